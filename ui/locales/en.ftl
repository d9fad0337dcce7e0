# meshtrace — the words of the local page, the CLI notices and the
# notifications, in English. Every message here exists in vi.ftl too (a test
# checks it). Keep sentences short and plain: people read these when they are
# worried.

## Shared

app-name = meshtrace
lang-name = English
nav-home = Am I OK?
nav-report = I tested positive
nav-privacy = Privacy
nav-settings = Settings
nav-label = Pages
footer = meshtrace runs only on this computer. Nothing about you leaves it unless you choose to report a positive test.
back-home = Back to “Am I OK?”

# A calendar date without the year: "1 December".
date-day-month = { $day } { $month ->
    [1] January
    [2] February
    [3] March
    [4] April
    [5] May
    [6] June
    [7] July
    [8] August
    [9] September
    [10] October
    [11] November
   *[12] December
}
# A date and time (UTC): "1 December, 14:05 UTC".
date-time = { $date }, { $time } UTC

## Exposures: the page, the CLI and the notifications say them the same way

# One day of an exposure: "about 25 minutes within 2 m on 1 December".
exposure-day = about { $minutes } { $minutes ->
    [one] minute
   *[other] minutes
} within 2 m on { $date }
exposure-day-short = less than a minute within 2 m on { $date }
exposure-high-title = You were in close contact with an infected person
exposure-high-lead = Someone you were near has since tested positive. You were close to them for long enough to be at risk.
exposure-low-title = A brief or distant contact
exposure-low-lead = Someone who was near you has since tested positive, but only briefly or not close. The risk is low.
exposure-low-advice = You do not need to do anything special. Watch how you feel over the next days.
exposure-none-title = No exposure found
exposure-none-lead = None of the people who reported a positive test in the last 14 days were close to you.
advice-title = What to do now
advice-text = Stay at home if you can, avoid close contact with other people, and watch for symptoms such as fever, cough or loss of taste. If you feel unwell, call your clinic before going there.
advice-link = Read your health authority’s advice

## The quiet details under the state

details-title = This computer
radio-on = Bluetooth: on
radio-failed = Bluetooth: not working since { $when } ({ $error }). Nothing new is recorded until it works again.
radio-sim = Radio: simulated ({ $kind })
peers-count = Connected to { $count ->
    [one] one other device
   *[other] { $count } other devices
}
peers-none = Not connected to any other device yet
catch-up-count = Catch-ups with other devices since start: { $count }
contacts-today = Contacts recorded today: { $count }
node-not-answering = meshtrace is not answering. Is it still running? Start it with “meshtrace run”.

## I tested positive

report-title = I tested positive
report-lead = If a clinic confirmed that you tested positive, you can warn the people you were close to. Nobody will learn who you are.
report-step1 = Step 1: get your request code
report-step1-text = The clinic needs this code to confirm your test. It holds no name, no phone number and no place.
report-step1-button = Get my request code
report-code-shown = Show this code (or its QR code) to your clinic. It can be used until { $until }.
report-code-replaced = An older request code (made { $made }) can no longer be used.
report-qr-label = QR code of your request code
report-step2 = Step 2: enter the certificate from the clinic
report-step2-text = Paste the certificate the clinic gave you, or choose a photo of its QR code.
report-paste-label = Certificate (starts with MTCT1:)
report-file-label = Or a photo or file of the QR code (PNG or JPEG, at most { $mb } MB)
report-check-button = Check
report-step3 = Step 3: check what will be sent
report-plan = Your phone will send { $padded } anonymous codes in { $chunks ->
    [one] one message
   *[other] { $chunks } messages
}. { $real ->
    [one] One of them comes
   *[other] { $real } of them come
} from your contacts between { $first } and { $last }; the rest are random, so nobody can tell how many people you met.
report-plan-never = No name, no place, no phone number and no time of day is sent.
report-plan-cap = { $count ->
    [one] One short contact is
   *[other] { $count } short contacts are
} left out: the clinic’s certificate allows fewer codes.
report-confirm-button = Send my report
report-cancel = Cancel
report-sent-title = Sent
report-sent-text = Thank you. The people you were close to will be warned, without learning who you are.

## Privacy

privacy-title = Privacy
privacy-what = What is kept
privacy-what-text = Random codes exchanged with nearby devices, with when and how close they were — never who, and never where. The exposures found, and the keys that lock all of this.
privacy-how-long = For how long
privacy-how-long-text = { $days } days. Older records are deleted automatically.
privacy-where = Where
privacy-where-text = Only on this computer, encrypted, in { $dir }.
privacy-leaves = What leaves this computer
privacy-leaves-text = Nothing, unless you report a positive test. Then only anonymous codes are sent.
delete-title = Delete everything
delete-text = This deletes every contact, exposure and key kept by meshtrace on this computer, and stops meshtrace. It cannot be undone.
delete-button = Delete everything…
delete-confirm-title = Delete everything?
delete-confirm-check = I understand: everything meshtrace kept on this computer will be deleted for good.
delete-confirm-button = Yes, delete everything
delete-done-title = Everything is deleted
delete-done-text = meshtrace has deleted what it kept on this computer and has stopped. To use it again, run “meshtrace init”.

## Settings

settings-title = Settings
settings-language = Language
settings-language-save = Save
settings-clinics = Clinics this computer trusts
settings-clinics-none = No clinic is trusted yet: reports from others cannot be checked. Ask your community for its clinic’s key.
settings-network = Network
settings-notify = Desktop notifications
settings-notify-on = On
settings-notify-off = Off
settings-readonly = These are set in the configuration file ({ $path }); change them there and restart meshtrace.

## Refusals and bad input

login-title = This page is locked
login-text = Only the person who runs meshtrace on this computer can open this page. To open it, run this command:
login-hint = It opens the page in your browser with a link that works once, for a few minutes.
login-expired = This link has expired or was already used. Run “meshtrace ui” again.
forbidden-title = Refused
forbidden-text = This page only answers requests made to this computer’s own address.
csrf-failed = This form is out of date. Go back, reload the page and try again.
not-found = There is no such page.
error-title = Something is wrong
err-empty = Paste the certificate, or choose a photo of its QR code.
err-not-certificate = This is not a certificate code. Check that you copied all of it: it starts with MTCT1:.
err-certificate-damaged = This certificate is damaged or was not made by a clinic. Ask the clinic for a new one.
err-wrong-network = This certificate is for another network (“{ $network }”). Ask a clinic of your own network.
err-expired = This certificate expired on { $date }. Ask the clinic for a new one.
err-not-yet-valid = This certificate is not valid before { $date }. Check this computer’s date and time.
err-untrusted = This certificate comes from a clinic this computer does not trust.
err-too-large = The file is too large (more than { $mb } MB). Choose a smaller photo of the QR code.
err-form-too-large = What you sent is too large. Paste only the certificate code.
err-no-qr = No QR code was found in this picture. Try a sharper photo, taken closer to the code.
err-not-image = This file is not a picture meshtrace can read. Use a PNG or JPEG photo of the QR code.
err-confirm = Tick the box to confirm.
err-node-refused = meshtrace refused: { $reason }
err-already-used = This certificate was already used: your report has been sent. A certificate works only once.
err-not-this-request = This certificate is not for a request code made on this computer, or that request is too old. Get a new request code (step 1) and ask the clinic again.
err-bad-form = The form was not filled in as expected. Go back and try again.

## The command line

cli-no-exposures = No exposures found.
cli-exposure-high = HIGH RISK: you were in close contact with an infected person (found { $found }).
cli-exposure-low = Low risk: a brief or distant contact has since tested positive (found { $found }).
cli-advice = What to do: { advice-text }
cli-status-running = meshtrace is running (process { $pid }) for network { $network }
cli-status-data = data dir:      { $dir }
cli-status-time = node time:     { $time }
cli-status-time-scaled = node time:     { $time }, clock ×{ $scale }
cli-status-radio = radio:         { $kind } — { $sightings } { $sightings ->
    [one] sighting
   *[other] sightings
}, { $malformed } malformed
cli-status-radio-failed = RADIO FAILED:  { $count } { $count ->
    [one] time
   *[other] times
}, last at { $when }: { $error }
cli-status-encounters = encounters:    { $stored } stored, { $open } open
cli-status-reports = reports held:  { $count } announcement { $count ->
    [one] chunk
   *[other] chunks
}
cli-status-exposures = exposures:     { $count } ({ $high } high risk)
cli-status-mesh = mesh:          { $count } { $count ->
    [one] peer
   *[other] peers
}, peer id { $peer }
cli-status-page = page:          { $url } (open it with “meshtrace ui”)
cli-status-purge-held = old data:      kept for now: the clock reads { $clock }, more than the retention period after the last date known to be right ({ $known }); nothing is deleted until a peer confirms the date or the clock is fixed
cli-status-unsent = your report:   { $count } { $count ->
    [one] chunk
   *[other] chunks
} waiting to be sent
cli-ui-opened = Opened the page in your browser. If it did not open, run “meshtrace ui --print-url” and open the link it prints (it works once, for { $minutes } minutes).
cli-ui-no-browser = No browser could be opened here. Open this link on this computer (it works once, for { $minutes } minutes):
cli-request-qr = The same code as a QR code, for the clinic to scan:

## Desktop notifications

notify-high-title = Close contact with an infected person
notify-low-title = A brief contact has tested positive
notify-open = Open meshtrace to see what to do.
