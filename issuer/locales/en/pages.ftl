# The order pages (issuer/src/pages). Messages ending in `-html` are HTML: their arguments arrive escaped.

site-name = Tickets
skip-to-content = Skip to content

events-title = Events
events-none = No events are on sale right now.
sold-out = Sold out
tickets-left = { $count ->
    [one] { $count } ticket left
   *[other] { $count } tickets left
}

form-tickets = Tickets
form-not-on-sale = Tickets for this event are not on sale right now.
form-free = Free
form-left = { $count } left
form-quantity-label = Number of { $type } tickets
form-addons-hint = Add to every ticket of this type:
form-addon-free = free
form-addon-sold-out = sold out
form-your-details = Your details
form-name-label = Name on the tickets
form-email-label = Email (we send the tickets there)
form-holders-legend = Names on the tickets (optional)
form-holders-hint = Each ticket can carry the name of the person who uses it. Leave a name out and the ticket carries the name above.
form-holders-label = Names for the { $type } tickets, one per line
form-payment-legend = Payment (for paid tickets)
form-payment-none = Paid tickets cannot be ordered here at the moment: there is no online payment and the organizer does not take payment at the door. Free tickets can be ordered.
form-pay-online = Pay now by card (secure checkout)
form-pay-at-door = Pay at the door
form-pay-at-door-only = Pay at the door (only for { $types } tickets)
form-total = Total:
form-submit = Order tickets
form-lost-tickets = Ordered already and lost your tickets?
form-lost-tickets-link = Get the links by mail

# Errors shown above the form (422 and others).
form-problem = There is a problem with your order
form-error-quantity-number = Quantity must be a whole number from 0 to { $max }.
form-error-quantity-negative = Quantity cannot be negative.
form-error-holders-count = You gave { $names } names for { $quantity } tickets: one name per ticket, please.
form-error-choose = Choose at least one ticket.
form-error-name = Your name is missing or too long: please enter a name of at most 100 characters.
form-error-email = Email is not a valid email address.
form-phone-label = Mobile number, with country code, for an SMS with your ticket link (optional)
form-error-phone = Give a mobile number with its country code, for example +49 170 1234567 (a landline cannot receive an SMS).
form-error-phone-limit = This mobile number has had its limit of text messages for the hour. Leave it out (your tickets still come by email) or try again later.
form-error-addons = Add-ons: one of the chosen add-ons cannot be ordered now; please check your choice.
form-error-holders = A name on a ticket is too long or contains characters that cannot be printed.
form-error-payment = Payment: paying at the door is not offered for these tickets; please pay online.
form-error-at-door-refused = Payment: paying at the door is not offered for { $types } tickets; please pay online.
form-error-tickets = Tickets: the number of tickets must be between 1 and { $max } of a type on sale now.
form-error-sold-out = Sorry, sold out: not enough tickets are left for your choice. Please choose fewer tickets or another ticket type.
form-error-payment-unreachable = The payment provider could not be reached. Nothing was charged; please try again.
form-error-not-found = This event or ticket type does not exist.
form-error-internal = Something went wrong on our side. Nothing was charged; please try again.
form-error-session = Your session expired or the form came from another site. Nothing was ordered; please check your choices and submit again.
form-error-no-online-payment = Paying online is not available here, so these tickets cannot be ordered now. Free tickets can.

# The customer's order page.
order-title = Order { $id }
order-confirmed-html = <strong>Your order is confirmed.</strong> Your tickets are on their way to <strong>{ $email }</strong>. You can also show them from this page at the door.
order-paid-pending-html = <strong>Thank you!</strong> We are confirming your payment; this page refreshes by itself in a few seconds.
order-cancelled-checkout-html = You left the payment page, so nothing was charged. Your tickets stay reserved for a short while: <a href="{ $link }">order again</a>.
order-pending = This order is waiting for payment.
order-expired-html = This order is <strong>{ $status ->
    [expired] expired
   *[cancelled] cancelled
}</strong>: the reservation ran out before a payment arrived, and nothing was charged. <a href="{ $link }">Order again</a>.
order-refunded = This order was refunded; its tickets are no longer valid.
order-status-html = Status: <strong>{ $status }</strong>
order-pay-at-door = Please pay { $amount } at the door.
order-summary-html = Order <code>{ $id }</code> for { $name } · total { $total }
order-pdf-link = Download all tickets as a PDF
order-pdf-hint = (one page per ticket, for printing)
ticket-revoked = This ticket was revoked (refunded or cancelled).
ticket-qr-label = QR code of ticket { $n }
ticket-download = Download ticket { $n } as an image
ticket-heading = Ticket { $n } — { $type }
ticket-holder = Holder: { $name }

# The order form's script (web/static/order.js) takes these from the page; `{name}` placeholders are its own.
js-at-door-blocked = Pay at the door is not offered for { $types } tickets.
js-fill-in = Please fill this in.
js-email-format = Please enter an email address like name@example.org.
js-at-most = At most { $max } tickets of this type are available.
js-whole-number = Please enter a whole number.
js-placing = Placing your order…
js-holder = Name on { $type } ticket { $n }

## "Lost your tickets?" (selfservice.rs) and its mail (email.rs)
lost-title = Lost your tickets?
lost-intro = Enter the email address you ordered with. We mail the links to your orders to that address.
lost-email-label = Email address
lost-submit = Send me my tickets
lost-sent = If there are orders for this address, we have sent a mail with links to them. Check your inbox (and spam folder) in a few minutes.
lost-invalid-email = Enter a valid email address.
lost-too-many-network = Too many requests from your network. Please try again in an hour.
lost-too-many-address = Too many requests for this address. Please try again in an hour.
