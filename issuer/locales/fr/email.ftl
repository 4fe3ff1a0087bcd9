email-subject = Vos billets pour { $event }
email-hello = Bonjour { $name },
email-confirmed = votre commande { $id } pour { $event } ({ $venue }) est confirmée. Total : { $total }.
email-when = Quand : { $when }
email-ticket-line = Billet { $n } : { $type } — { $holder }
email-ticket-heading = Billet { $n } : { $type }
email-holder = Titulaire : { $name }
email-qr-alt = Code QR du billet
email-show-text = Présentez les codes QR à l’entrée. Vos billets à tout moment : { $url }
email-show = Présentez les codes QR à l’entrée.
email-view-online = Voir vos billets en ligne

pdf-title = Billets : { $event }
pdf-ticket-of = Billet { $n } sur { $total }
pdf-holder = Titulaire : { $name }
pdf-order = Commande : { $id }
pdf-pay-at-door = À payer à l’entrée : { $amount }
pdf-instructions = Présentez ce code à l’entrée, imprimé ou sur un écran. Gardez-le pour vous : une copie est le même billet.

# The SMS with the order link (issuer/src/sms.rs), within 1,600 characters with the link.
sms-tickets = Vos billets pour { $event } : { $link }

lookup-subject = Vos commandes
lookup-intro = vous avez demandé les liens vers vos commandes. Les voici :
lookup-order = { $event } (commande { $id }, { $status ->
    [confirmed] confirmée
    [pending] paiement en attente
    [refunded] remboursée
    [disputed] paiement contesté
    [payment_conflict] paiement en cours de vérification
    [cancelled] annulée
    [expired] expirée
   *[other] { $status }
})
lookup-ignore = Si vous n’avez pas demandé cet e-mail, ignorez-le : vous seul recevez ces liens.
