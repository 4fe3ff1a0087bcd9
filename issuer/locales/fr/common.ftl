language-self = Français
language-switcher = Langue

weekday = { $day ->
    [mon] lundi
    [tue] mardi
    [wed] mercredi
    [thu] jeudi
    [fri] vendredi
    [sat] samedi
   *[sun] dimanche
}
month = { $month ->
    [jan] janvier
    [feb] février
    [mar] mars
    [apr] avril
    [may] mai
    [jun] juin
    [jul] juillet
    [aug] août
    [sep] septembre
    [oct] octobre
    [nov] novembre
   *[dec] décembre
}
format-date = { $weekday } { $day } { $month } { $year }
format-time = { $hour }:{ $minute }
format-date-time = { $date } à { $time }

number-decimal-separator = {","}
number-group-separator = {"\u202F"}
currency-symbol = { $code ->
    [EUR] €
    [USD] $US
    [GBP] £GB
   *[other] {""}
}
format-money = { $amount }{"\u202F"}{ $symbol }
format-money-code = { $amount }{"\u202F"}{ $code }

# Wallet passes (issuer/src/orders/wallet): the links on the order page and in the ticket mail, and the
# Apple Wallet pass's field labels and texts.
wallet-apple-link = Ajouter à Apple Wallet
wallet-google-link = Enregistrer dans Google Wallet
wallet-description = Billet pour { $event }
wallet-event = Événement
wallet-venue = Lieu
wallet-starts = Début
wallet-when = Quand
wallet-ticket = Billet
wallet-holder = Titulaire
wallet-order = Commande
wallet-pay-at-door = À payer à l’entrée
wallet-entry = Entrée
wallet-notice = Présentez ce code à l’entrée. Gardez-le pour vous, car une copie est le même billet, et il n’est valable qu’une fois.
wallet-barcode-alt = Billet { $n }
