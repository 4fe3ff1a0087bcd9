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
