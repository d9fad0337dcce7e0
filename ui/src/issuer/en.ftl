# meshtrace — the clinic's page (`meshtrace issuer serve`), in English. Every
# message here exists in vi.ftl too (a test checks it). The words shared with
# the node's page (dates, refusals) come from ui/locales/en.ftl.

issuer-app-name = meshtrace — clinic
issuer-footer = This page runs only on this computer. The clinic never learns whom the person met: it only confirms that their test was positive.

issuer-title = Certify a positive test
issuer-lead = First check the person’s test result. Then paste the request code their meshtrace page shows, or upload a photo of its QR code, choose the days to report, and certify.
issuer-network = This page certifies requests of the network “{ $network }” only.
issuer-any-network = This page certifies requests of any network: after certifying, check that the network shown is your community’s.
issuer-code-label = Request code (it starts with MTRQ1:)
issuer-photo-label = Or a photo or picture of its QR code (PNG or JPEG, up to { $mb } MB)
issuer-window-legend = Days of contacts to report
issuer-window-hint = Usually from two days before the first symptoms (or, without symptoms, two days before the test) until today; at most { $max } days.
issuer-first-day = First day
issuer-last-day = Last day
issuer-valid-label = Days the person has to send the report
issuer-submit = Certify
issuer-nothing-issued = Nothing was certified.

issuer-done-title = The certificate is ready
issuer-done-lead = Give it to the person: on their meshtrace page (“I tested positive”, step 2) they scan this QR code or paste the text below.
issuer-done-network = Network: { $network }
issuer-done-window = Contacts from { $first } to { $last }
issuer-done-until = Usable until { $until }
issuer-cert-label = Certificate code
issuer-qr-label = The certificate as a QR code
issuer-another = Certify another request

issuer-err-empty = Paste a request code or choose a photo of its QR code.
issuer-err-too-long = This text is far too long to be a request code. Paste only the code that starts with “MTRQ1:”.
issuer-err-certificate-given = This is a certificate code (MTCT1:…), not a request code. The request code starts with “MTRQ1:”.
issuer-err-not-request = This is not a meshtrace request code. A request code starts with “MTRQ1:”.
issuer-err-cut = The request code seems cut off. Copy the whole code again.
issuer-err-typo = The request code has a typo: its check letters do not match. Copy it again, or upload a photo of the QR code.
issuer-err-unreadable = This request code cannot be read. Ask the person to show it again.
issuer-err-network = This request is for the network “{ $found }”, but this page certifies for “{ $expected }”. Check that the person belongs to your community.
issuer-err-future = The last day cannot be after today ({ $today }).
issuer-err-reversed = The first day ({ $first }) is after the last day ({ $last }).
issuer-err-window-long = The days chosen cover { $days } days; at most { $max } can be reported.
issuer-err-valid = The person can have from { $min } to { $max } days to send the report.
issuer-err-date = Choose both days with the date fields.
issuer-err-not-image = The file is not a PNG or JPEG picture.
issuer-err-no-qr = No QR code was found in the picture. Take a sharper photo from closer, or paste the code.
issuer-err-refused = The certificate could not be made ({ $reason }).
issuer-err-form = The form arrived incomplete. Fill it in again.

issuer-login-title = Open the clinic’s page with its link
issuer-login-text = This page opens only through the one-time link that `meshtrace issuer serve` printed when it started. For a new link, stop it (Ctrl-C) and start it again:

# `meshtrace issuer serve` in the terminal.
issuer-cli-opened = The clinic’s page is open in your browser. Ctrl-C stops it.
issuer-cli-link = The clinic’s page is running. Open this link on this computer (it works once, for { $minutes } minutes); Ctrl-C stops the page:
