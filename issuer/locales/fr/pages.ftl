site-name = Billets
skip-to-content = Aller au contenu

events-title = Événements
events-none = Aucun événement n’est en vente pour le moment.
sold-out = Complet
tickets-left = { $count ->
    [one] { $count } billet restant
   *[other] { $count } billets restants
}

form-tickets = Billets
form-not-on-sale = Les billets de cet événement ne sont pas en vente pour le moment.
form-free = Gratuit
form-left = { $count } restants
form-quantity-label = Nombre de billets { $type }
form-addons-hint = Ajouter à chaque billet de ce type :
form-addon-free = gratuit
form-addon-sold-out = complet
form-your-details = Vos coordonnées
form-name-label = Nom sur les billets
form-email-label = E-mail (nous y envoyons les billets)
form-holders-legend = Noms sur les billets (facultatif)
form-holders-hint = Chaque billet peut porter le nom de la personne qui l’utilise. Sans nom, le billet porte le nom ci-dessus.
form-holders-label = Noms pour les billets { $type }, un par ligne
form-payment-legend = Paiement (billets payants)
form-payment-none = Les billets payants ne peuvent pas être commandés ici pour le moment : il n’y a pas de paiement en ligne et l’organisateur n’accepte pas le paiement à l’entrée. Les billets gratuits peuvent être commandés.
form-pay-online = Payer maintenant par carte (paiement sécurisé)
form-pay-at-door = Payer à l’entrée
form-pay-at-door-only = Payer à l’entrée (seulement pour les billets { $types })
form-total = Total :
form-submit = Commander les billets
form-lost-tickets = Déjà commandé et billets perdus ?
form-lost-tickets-link = Recevoir les liens par e-mail

form-problem = Votre commande pose un problème
form-error-quantity-number = La quantité doit être un nombre entier de 0 à { $max }.
form-error-quantity-negative = La quantité ne peut pas être négative.
form-error-holders-count = Vous avez donné { $names } noms pour { $quantity } billets : un nom par billet, s’il vous plaît.
form-error-choose = Choisissez au moins un billet.
form-error-name = Votre nom manque ou est trop long : 100 caractères au plus.
form-error-email = L’adresse e-mail n’est pas valide.
form-phone-label = Numéro de mobile, avec l’indicatif du pays, pour recevoir par SMS le lien de vos billets (facultatif)
form-error-phone = Indiquez un numéro de mobile avec l’indicatif du pays, par exemple +33 6 12 34 56 78 (une ligne fixe ne reçoit pas de SMS).
form-error-phone-limit = Ce numéro de mobile a reçu assez de SMS pour cette heure. Laissez-le vide (vos billets arrivent quand même par e-mail) ou réessayez plus tard.
form-error-addons = Options : une des options choisies ne peut pas être commandée pour le moment ; vérifiez votre choix.
form-error-holders = Un nom sur un billet est trop long ou contient des caractères qui ne s’impriment pas.
form-error-payment = Paiement : le paiement à l’entrée n’est pas proposé pour ces billets ; payez en ligne.
form-error-at-door-refused = Paiement : le paiement à l’entrée n’est pas proposé pour les billets { $types } ; payez en ligne.
form-error-tickets = Billets : le nombre doit être entre 1 et { $max } billets d’un type en vente.
form-error-sold-out = Désolé, complet : il ne reste pas assez de billets pour votre choix. Choisissez moins de billets ou un autre type de billet.
form-error-payment-unreachable = Le prestataire de paiement est injoignable. Rien n’a été débité ; veuillez réessayer.
form-error-not-found = Cet événement ou ce type de billet n’existe pas.
form-error-internal = Une erreur s’est produite de notre côté. Rien n’a été débité ; veuillez réessayer.
form-error-session = Votre session a expiré ou le formulaire venait d’un autre site. Rien n’a été commandé ; vérifiez vos choix et envoyez de nouveau.
form-error-no-online-payment = Le paiement en ligne n’est pas disponible ici : ces billets ne peuvent pas être commandés pour le moment. Les billets gratuits, si.

order-title = Commande { $id }
order-confirmed-html = <strong>Votre commande est confirmée.</strong> Vos billets sont en route vers <strong>{ $email }</strong>. Vous pouvez aussi les présenter à l’entrée depuis cette page.
order-paid-pending-html = <strong>Merci !</strong> Nous confirmons votre paiement ; cette page se recharge d’elle-même dans quelques secondes.
order-cancelled-checkout-html = Vous avez quitté la page de paiement : rien n’a été débité. Vos billets restent réservés un court moment : <a href="{ $link }">commander de nouveau</a>.
order-pending = Cette commande attend son paiement.
order-expired-html = Cette commande est <strong>{ $status ->
    [expired] expirée
   *[cancelled] annulée
}</strong> : la réservation a pris fin avant l’arrivée d’un paiement, et rien n’a été débité. <a href="{ $link }">Commander de nouveau</a>.
order-refunded = Cette commande a été remboursée ; ses billets ne sont plus valables.
order-status-html = Statut : <strong>{ $status }</strong>
order-pay-at-door = Veuillez payer { $amount } à l’entrée.
order-summary-html = Commande <code>{ $id }</code> pour { $name } · total { $total }
order-pdf-link = Télécharger tous les billets en PDF
order-pdf-hint = (une page par billet, à imprimer)
ticket-revoked = Ce billet a été révoqué (remboursé ou annulé).
ticket-qr-label = Code QR du billet { $n }
ticket-download = Télécharger le billet { $n } en image
ticket-heading = Billet { $n } — { $type }
ticket-holder = Titulaire : { $name }

js-at-door-blocked = Le paiement à l’entrée n’est pas proposé pour les billets { $types }.
js-fill-in = Veuillez remplir ce champ.
js-email-format = Saisissez une adresse e-mail comme nom@example.org.
js-at-most = Au plus { $max } billets de ce type sont disponibles.
js-whole-number = Saisissez un nombre entier.
js-placing = Commande en cours…
js-holder = Nom sur le billet { $type } n° { $n }

## « Billets perdus ? » (selfservice.rs) et son e-mail (email.rs)
lost-title = Billets perdus ?
lost-intro = Saisissez l’adresse e-mail utilisée pour la commande. Nous y envoyons les liens vers vos commandes.
lost-email-label = Adresse e-mail
lost-submit = M’envoyer mes billets
lost-sent = S’il existe des commandes pour cette adresse, nous avons envoyé un e-mail avec leurs liens. Consultez votre boîte de réception (et les indésirables) dans quelques minutes.
lost-invalid-email = Saisissez une adresse e-mail valide.
lost-too-many-network = Trop de demandes depuis votre réseau. Réessayez dans une heure.
lost-too-many-address = Trop de demandes pour cette adresse. Réessayez dans une heure.
