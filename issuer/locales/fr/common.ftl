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
