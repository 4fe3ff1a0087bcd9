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
