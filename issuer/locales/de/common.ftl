language-self = Deutsch
language-switcher = Sprache

weekday = { $day ->
    [mon] Montag
    [tue] Dienstag
    [wed] Mittwoch
    [thu] Donnerstag
    [fri] Freitag
    [sat] Samstag
   *[sun] Sonntag
}
month = { $month ->
    [jan] Januar
    [feb] Februar
    [mar] März
    [apr] April
    [may] Mai
    [jun] Juni
    [jul] Juli
    [aug] August
    [sep] September
    [oct] Oktober
    [nov] November
   *[dec] Dezember
}
format-date = { $weekday }, { $day }. { $month } { $year }
format-time = { $hour }:{ $minute }
format-date-time = { $date }, { $time }

number-decimal-separator = {","}
number-group-separator = .
currency-symbol = { $code ->
    [EUR] €
    [USD] $
    [GBP] £
   *[other] {""}
}
format-money = { $amount }{"\u00A0"}{ $symbol }
format-money-code = { $amount }{"\u00A0"}{ $code }

# Wallet passes (issuer/src/orders/wallet): the links on the order page and in the ticket mail, and the
# Apple Wallet pass's field labels and texts.
wallet-apple-link = Zu Apple Wallet hinzufügen
wallet-google-link = In Google Wallet speichern
wallet-description = Ticket für { $event }
wallet-event = Veranstaltung
wallet-venue = Ort
wallet-starts = Beginn
wallet-when = Wann
wallet-ticket = Ticket
wallet-holder = Inhaber
wallet-order = Bestellung
wallet-pay-at-door = Am Einlass zu zahlen
wallet-entry = Einlass
wallet-notice = Zeigen Sie diesen Code am Eingang. Geben Sie ihn nicht weiter: Eine Kopie ist dasselbe Ticket, und es gilt nur einmal.
wallet-barcode-alt = Ticket { $n }
