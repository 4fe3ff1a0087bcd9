email-subject = Ihre Tickets für { $event }
email-hello = Hallo { $name },
email-confirmed = Ihre Bestellung { $id } für { $event } ({ $venue }) ist bestätigt. Summe: { $total }.
email-when = Wann: { $when }
email-ticket-line = Ticket { $n }: { $type } — { $holder }
email-ticket-heading = Ticket { $n }: { $type }
email-holder = Inhaber: { $name }
email-qr-alt = QR-Code des Tickets
email-show-text = Zeigen Sie die QR-Codes am Einlass vor. Ihre Tickets jederzeit ansehen: { $url }
email-show = Zeigen Sie die QR-Codes am Einlass vor.
email-view-online = Ihre Tickets online ansehen

pdf-title = Tickets: { $event }
pdf-ticket-of = Ticket { $n } von { $total }
pdf-holder = Inhaber: { $name }
pdf-order = Bestellung: { $id }
pdf-pay-at-door = Am Einlass zu bezahlen: { $amount }
pdf-instructions = Zeigen Sie diesen Code am Einlass vor, gedruckt oder auf dem Bildschirm. Halten Sie ihn geheim: Eine Kopie ist dasselbe Ticket.

# The SMS with the order link (issuer/src/sms.rs), within 1,600 characters with the link.
sms-tickets = Ihre Tickets für { $event }: { $link }

lookup-subject = Ihre Bestellungen
lookup-intro = Sie haben die Links zu Ihren Bestellungen angefordert. Hier sind sie:
lookup-order = { $event } (Bestellung { $id }, { $status ->
    [confirmed] bestätigt
    [pending] Zahlung ausstehend
    [refunded] erstattet
    [disputed] Zahlung angefochten
    [payment_conflict] Zahlung wird geprüft
    [cancelled] storniert
    [expired] abgelaufen
   *[other] { $status }
})
lookup-ignore = Falls Sie diese E-Mail nicht angefordert haben, können Sie sie ignorieren: Nur Sie erhalten diese Links.
