site-name = Tickets
skip-to-content = Zum Inhalt springen

events-title = Veranstaltungen
events-none = Zurzeit sind keine Veranstaltungen im Verkauf.
sold-out = Ausverkauft
tickets-left = { $count ->
    [one] Noch { $count } Ticket
   *[other] Noch { $count } Tickets
}

form-tickets = Tickets
form-not-on-sale = Tickets für diese Veranstaltung sind zurzeit nicht im Verkauf.
form-free = Kostenlos
form-left = noch { $count }
form-quantity-label = Anzahl { $type }-Tickets
form-addons-hint = Zu jedem Ticket dieser Art hinzufügen:
form-addon-free = kostenlos
form-addon-sold-out = ausverkauft
form-your-details = Ihre Angaben
form-name-label = Name auf den Tickets
form-email-label = E-Mail (dorthin senden wir die Tickets)
form-holders-legend = Namen auf den Tickets (optional)
form-holders-hint = Jedes Ticket kann den Namen der Person tragen, die es nutzt. Ohne eigenen Namen trägt das Ticket den Namen oben.
form-holders-label = Namen für die { $type }-Tickets, einer pro Zeile
form-payment-legend = Zahlung (für kostenpflichtige Tickets)
form-payment-none = Kostenpflichtige Tickets können hier zurzeit nicht bestellt werden: Es gibt keine Online-Zahlung, und der Veranstalter nimmt keine Zahlung am Einlass an. Kostenlose Tickets können bestellt werden.
form-pay-online = Jetzt mit Karte bezahlen (sicherer Bezahlvorgang)
form-pay-at-door = Am Einlass bezahlen
form-pay-at-door-only = Am Einlass bezahlen (nur für { $types }-Tickets)
form-total = Summe:
form-submit = Tickets bestellen
form-lost-tickets = Schon bestellt und die Tickets verloren?
form-lost-tickets-link = Links per E-Mail erhalten

form-problem = Es gibt ein Problem mit Ihrer Bestellung
form-error-quantity-number = Die Anzahl muss eine ganze Zahl von 0 bis { $max } sein.
form-error-quantity-negative = Die Anzahl kann nicht negativ sein.
form-error-holders-count = Sie haben { $names } Namen für { $quantity } Tickets angegeben: bitte ein Name pro Ticket.
form-error-choose = Bitte wählen Sie mindestens ein Ticket.
form-error-name = Ihr Name fehlt oder ist zu lang: bitte höchstens 100 Zeichen.
form-error-email = Die E-Mail-Adresse ist ungültig.
form-phone-label = Handynummer mit Ländervorwahl, für eine SMS mit dem Link zu Ihren Tickets (optional)
form-error-phone = Bitte geben Sie eine Handynummer mit Ländervorwahl an, zum Beispiel +49 170 1234567 (ein Festnetzanschluss kann keine SMS empfangen).
form-error-phone-limit = Diese Mobilnummer hat für diese Stunde genug SMS erhalten. Lassen Sie sie weg (die Tickets kommen trotzdem per E-Mail) oder versuchen Sie es später.
form-error-addons = Extras: Eines der gewählten Extras kann zurzeit nicht bestellt werden; bitte prüfen Sie Ihre Auswahl.
form-error-holders = Ein Name auf einem Ticket ist zu lang oder enthält Zeichen, die nicht gedruckt werden können.
form-error-payment = Zahlung: Für diese Tickets ist Zahlung am Einlass nicht möglich; bitte bezahlen Sie online.
form-error-at-door-refused = Zahlung: Für { $types }-Tickets ist Zahlung am Einlass nicht möglich; bitte bezahlen Sie online.
form-error-tickets = Tickets: Die Anzahl muss zwischen 1 und { $max } Tickets einer Art liegen, die gerade im Verkauf ist.
form-error-sold-out = Leider ausverkauft: Für Ihre Auswahl sind nicht mehr genug Tickets übrig. Bitte wählen Sie weniger Tickets oder eine andere Ticketart.
form-error-payment-unreachable = Der Zahlungsanbieter war nicht erreichbar. Es wurde nichts berechnet; bitte versuchen Sie es noch einmal.
form-error-not-found = Diese Veranstaltung oder Ticketart gibt es nicht.
form-error-internal = Bei uns ist etwas schiefgegangen. Es wurde nichts berechnet; bitte versuchen Sie es noch einmal.
form-error-session = Ihre Sitzung ist abgelaufen oder das Formular kam von einer anderen Website. Es wurde nichts bestellt; bitte prüfen Sie Ihre Auswahl und senden Sie sie erneut.
form-error-no-online-payment = Online-Zahlung ist hier nicht verfügbar, daher können diese Tickets zurzeit nicht bestellt werden. Kostenlose Tickets schon.

order-title = Bestellung { $id }
order-confirmed-html = <strong>Ihre Bestellung ist bestätigt.</strong> Ihre Tickets sind unterwegs an <strong>{ $email }</strong>. Sie können sie am Einlass auch auf dieser Seite vorzeigen.
order-paid-pending-html = <strong>Vielen Dank!</strong> Wir bestätigen Ihre Zahlung; diese Seite lädt sich in wenigen Sekunden von selbst neu.
order-cancelled-checkout-html = Sie haben die Bezahlseite verlassen, daher wurde nichts berechnet. Ihre Tickets bleiben kurz reserviert: <a href="{ $link }">erneut bestellen</a>.
order-pending = Diese Bestellung wartet auf die Zahlung.
order-expired-html = Diese Bestellung ist <strong>{ $status ->
    [expired] abgelaufen
   *[cancelled] storniert
}</strong>: Die Reservierung lief ab, bevor eine Zahlung einging, und es wurde nichts berechnet. <a href="{ $link }">Erneut bestellen</a>.
order-refunded = Diese Bestellung wurde erstattet; ihre Tickets sind nicht mehr gültig.
order-status-html = Status: <strong>{ $status }</strong>
order-pay-at-door = Bitte bezahlen Sie { $amount } am Einlass.
order-summary-html = Bestellung <code>{ $id }</code> für { $name } · Summe { $total }
order-pdf-link = Alle Tickets als PDF herunterladen
order-pdf-hint = (eine Seite pro Ticket, zum Drucken)
ticket-revoked = Dieses Ticket wurde widerrufen (erstattet oder storniert).
ticket-qr-label = QR-Code von Ticket { $n }
ticket-download = Ticket { $n } als Bild herunterladen
ticket-heading = Ticket { $n } — { $type }
ticket-holder = Inhaber: { $name }

js-at-door-blocked = Zahlung am Einlass ist für { $types }-Tickets nicht möglich.
js-fill-in = Bitte füllen Sie dieses Feld aus.
js-email-format = Bitte geben Sie eine E-Mail-Adresse wie name@example.org ein.
js-at-most = Von dieser Ticketart sind höchstens { $max } Tickets verfügbar.
js-whole-number = Bitte geben Sie eine ganze Zahl ein.
js-placing = Ihre Bestellung wird aufgegeben…
js-holder = Name auf { $type }-Ticket { $n }

## "Tickets verloren?" (selfservice.rs) und ihre E-Mail (email.rs)
lost-title = Tickets verloren?
lost-intro = Geben Sie die E-Mail-Adresse ein, mit der Sie bestellt haben. Wir senden die Links zu Ihren Bestellungen an diese Adresse.
lost-email-label = E-Mail-Adresse
lost-submit = Meine Tickets senden
lost-sent = Falls es Bestellungen mit dieser Adresse gibt, haben wir eine E-Mail mit den Links dazu gesendet. Sehen Sie in einigen Minuten in Ihren Posteingang (und Spam-Ordner).
lost-invalid-email = Geben Sie eine gültige E-Mail-Adresse ein.
lost-too-many-network = Zu viele Anfragen aus Ihrem Netz. Bitte versuchen Sie es in einer Stunde erneut.
lost-too-many-address = Zu viele Anfragen für diese Adresse. Bitte versuchen Sie es in einer Stunde erneut.
