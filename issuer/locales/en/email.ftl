# The ticket mail (issuer/src/email.rs) and the PDF tickets (issuer/src/orders/pdf.rs), in the order's language.

email-subject = Your tickets for { $event }
email-hello = Hello { $name },
email-confirmed = your order { $id } for { $event } ({ $venue }) is confirmed. Total: { $total }.
email-when = When: { $when }
email-ticket-line = Ticket { $n }: { $type } — { $holder }
email-ticket-heading = Ticket { $n }: { $type }
email-holder = Holder: { $name }
email-qr-alt = Ticket QR code
email-show-text = Show the QR codes at the entrance. View your tickets any time: { $url }
email-show = Show the QR codes at the entrance.
email-view-online = View your tickets online

pdf-title = Tickets: { $event }
pdf-ticket-of = Ticket { $n } of { $total }
pdf-holder = Holder: { $name }
pdf-order = Order: { $id }
pdf-pay-at-door = To pay at the door: { $amount }
pdf-instructions = Show this code at the entrance, printed or on a screen. Keep it private: a copy is the same ticket.

# The SMS with the order link (issuer/src/sms.rs), within 1,600 characters with the link.
sms-tickets = Your tickets for { $event }: { $link }

lookup-subject = Your orders
lookup-intro = you asked for the links to your orders. Here they are:
lookup-order = { $event } (order { $id }, { $status ->
    [confirmed] confirmed
    [pending] awaiting payment
    [refunded] refunded
    [disputed] payment disputed
    [payment_conflict] payment being checked
    [cancelled] cancelled
    [expired] expired
   *[other] { $status }
})
lookup-ignore = If you did not ask for this mail, you can ignore it: only you receive these links.
