# Locale data: names of days and months, how dates, times and money are written, the language switcher.
# The code passes `format-*` messages every part they may need; each language uses the ones it writes.

language-self = English
language-switcher = Language

weekday = { $day ->
    [mon] Monday
    [tue] Tuesday
    [wed] Wednesday
    [thu] Thursday
    [fri] Friday
    [sat] Saturday
   *[sun] Sunday
}
month = { $month ->
    [jan] January
    [feb] February
    [mar] March
    [apr] April
    [may] May
    [jun] June
    [jul] July
    [aug] August
    [sep] September
    [oct] October
    [nov] November
   *[dec] December
}
format-date = { $weekday }, { $day } { $month } { $year }
format-time = { $hour12 }:{ $minute } { $period ->
    [am] AM
   *[pm] PM
}
format-date-time = { $date }, { $time }

number-decimal-separator = .
number-group-separator = {","}
# An empty symbol: the amount is written with the currency's code (`format-money-code`).
currency-symbol = { $code ->
    [EUR] €
    [USD] $
    [GBP] £
   *[other] {""}
}
format-money = { $symbol }{ $amount }
format-money-code = { $code }{"\u00A0"}{ $amount }

# Wallet passes (issuer/src/orders/wallet): the links on the order page and in the ticket mail, and the
# Apple Wallet pass's field labels and texts.
wallet-apple-link = Add to Apple Wallet
wallet-google-link = Save to Google Wallet
wallet-description = Ticket for { $event }
wallet-event = Event
wallet-venue = Venue
wallet-starts = Starts
wallet-when = When
wallet-ticket = Ticket
wallet-holder = Holder
wallet-order = Order
wallet-pay-at-door = To pay at the door
wallet-entry = Entry
wallet-notice = Show this code at the entrance. Keep it private: a copy is the same ticket, and it admits once.
wallet-barcode-alt = Ticket { $n }
