# meshtrace — lời của trang web cục bộ, thông báo dòng lệnh và thông báo
# trên màn hình, bằng tiếng Việt. Mọi thông điệp ở đây phải có trong en.ftl
# (có kiểm thử). Viết câu ngắn, dễ hiểu: người đọc thường đang lo lắng.

## Dùng chung

app-name = meshtrace
lang-name = Tiếng Việt
nav-home = Tôi có sao không?
nav-report = Tôi có kết quả dương tính
nav-privacy = Quyền riêng tư
nav-settings = Cài đặt
nav-label = Các trang
footer = meshtrace chỉ chạy trên máy tính này. Không có thông tin nào về bạn rời khỏi máy, trừ khi bạn tự chọn báo kết quả dương tính.
back-home = Quay lại “Tôi có sao không?”

# Ngày tháng không có năm: "ngày 1 tháng 12".
date-day-month = ngày { $day } tháng { $month }
# Ngày và giờ (UTC): "ngày 1 tháng 12, 14:05 UTC".
date-time = { $date }, { $time } UTC

## Tiếp xúc: trang web, dòng lệnh và thông báo nói giống nhau

# Một ngày tiếp xúc: "khoảng 25 phút trong phạm vi 2 mét vào ngày 1 tháng 12".
exposure-day = khoảng { $minutes } phút trong phạm vi 2 mét vào { $date }
exposure-day-short = chưa đến một phút trong phạm vi 2 mét vào { $date }
exposure-high-title = Bạn đã tiếp xúc gần với người nhiễm bệnh
exposure-high-lead = Một người từng ở gần bạn vừa có kết quả xét nghiệm dương tính. Bạn đã ở gần người đó đủ lâu để có nguy cơ lây nhiễm.
exposure-low-title = Tiếp xúc ngắn hoặc ở xa
exposure-low-lead = Một người từng ở gần bạn vừa có kết quả dương tính, nhưng chỉ trong thời gian ngắn hoặc không ở gần. Nguy cơ thấp.
exposure-low-advice = Bạn không cần làm gì đặc biệt. Hãy theo dõi sức khỏe của mình trong những ngày tới.
exposure-none-title = Không có tiếp xúc nguy cơ
exposure-none-lead = Trong 14 ngày qua, không có ai báo kết quả dương tính từng ở gần bạn.
advice-title = Bạn cần làm gì bây giờ
advice-text = Hãy ở nhà nếu có thể, tránh tiếp xúc gần với người khác và theo dõi các triệu chứng như sốt, ho hoặc mất vị giác. Nếu thấy không khỏe, hãy gọi điện cho cơ sở y tế trước khi đến.
advice-link = Xem hướng dẫn của cơ quan y tế

## Thông tin phụ bên dưới

details-title = Máy tính này
radio-on = Bluetooth: đang hoạt động
radio-failed = Bluetooth: không hoạt động từ { $when } ({ $error }). Máy sẽ không ghi nhận tiếp xúc mới cho đến khi Bluetooth hoạt động lại.
radio-sim = Sóng vô tuyến: mô phỏng ({ $kind })
peers-count = Đang kết nối với { $count } thiết bị khác
peers-none = Chưa kết nối với thiết bị nào khác
catch-up-count = Số lần đồng bộ với thiết bị khác từ khi khởi động: { $count }
contacts-today = Số lần tiếp xúc ghi nhận hôm nay: { $count }
node-not-answering = meshtrace không phản hồi. Chương trình còn chạy không? Hãy khởi động bằng lệnh “meshtrace run”.

## Tôi có kết quả dương tính

report-title = Tôi có kết quả dương tính
report-lead = Nếu cơ sở y tế đã xác nhận bạn có kết quả dương tính, bạn có thể báo cho những người từng ở gần bạn. Không ai biết bạn là ai.
report-step1 = Bước 1: lấy mã yêu cầu
report-step1-text = Cơ sở y tế cần mã này để xác nhận kết quả xét nghiệm của bạn. Mã không chứa tên, số điện thoại hay địa điểm nào.
report-step1-button = Lấy mã yêu cầu của tôi
report-code-shown = Hãy đưa mã này (hoặc mã QR của nó) cho cơ sở y tế. Mã dùng được đến { $until }.
report-code-replaced = Một mã yêu cầu cũ hơn (tạo lúc { $made }) không còn dùng được nữa.
report-qr-label = Mã QR của mã yêu cầu
report-step2 = Bước 2: nhập giấy xác nhận của cơ sở y tế
report-step2-text = Dán giấy xác nhận mà cơ sở y tế đưa cho bạn, hoặc chọn ảnh chụp mã QR của nó.
report-paste-label = Giấy xác nhận (bắt đầu bằng MTCT1:)
report-file-label = Hoặc ảnh hay tệp chứa mã QR (PNG hoặc JPEG, tối đa { $mb } MB)
report-check-button = Kiểm tra
report-step3 = Bước 3: xem lại những gì sẽ được gửi
report-plan = Máy của bạn sẽ gửi { $padded } mã ẩn danh trong { $chunks } tin. Trong đó { $real } mã là từ những lần tiếp xúc của bạn từ { $first } đến { $last }; số còn lại là mã ngẫu nhiên, để không ai biết bạn đã gặp bao nhiêu người.
report-plan-never = Không gửi tên, địa điểm, số điện thoại hay giờ giấc nào.
report-plan-cap = { $count } lần tiếp xúc ngắn được bỏ qua vì giấy xác nhận chỉ cho phép ít mã hơn.
report-confirm-button = Gửi báo cáo của tôi
report-cancel = Hủy
report-sent-title = Đã gửi
report-sent-text = Cảm ơn bạn. Những người từng ở gần bạn sẽ được cảnh báo mà không biết bạn là ai.

## Quyền riêng tư

privacy-title = Quyền riêng tư
privacy-what = Những gì được lưu
privacy-what-text = Các mã ngẫu nhiên trao đổi với thiết bị ở gần, kèm thời điểm và mức độ gần — không bao giờ lưu đó là ai hay ở đâu. Các lần tiếp xúc được phát hiện và các khóa bảo vệ toàn bộ dữ liệu này.
privacy-how-long = Lưu trong bao lâu
privacy-how-long-text = { $days } ngày. Dữ liệu cũ hơn được tự động xóa.
privacy-where = Lưu ở đâu
privacy-where-text = Chỉ trên máy tính này, đã được mã hóa, trong thư mục { $dir }.
privacy-leaves = Những gì rời khỏi máy tính này
privacy-leaves-text = Không có gì, trừ khi bạn báo kết quả dương tính. Khi đó chỉ có các mã ẩn danh được gửi đi.
delete-title = Xóa tất cả
delete-text = Thao tác này xóa mọi tiếp xúc, kết quả và khóa mà meshtrace lưu trên máy tính này, rồi dừng meshtrace. Không thể hoàn tác.
delete-button = Xóa tất cả…
delete-confirm-title = Xóa tất cả?
delete-confirm-check = Tôi hiểu: mọi thứ meshtrace lưu trên máy tính này sẽ bị xóa vĩnh viễn.
delete-confirm-button = Đồng ý, xóa tất cả
delete-done-title = Đã xóa tất cả
delete-done-text = meshtrace đã xóa mọi thứ lưu trên máy tính này và đã dừng. Để dùng lại, hãy chạy lệnh “meshtrace init”.

## Cài đặt

settings-title = Cài đặt
settings-language = Ngôn ngữ
settings-language-save = Lưu
settings-clinics = Các cơ sở y tế mà máy tính này tin cậy
settings-clinics-none = Chưa có cơ sở y tế nào được tin cậy: chưa thể kiểm tra báo cáo của người khác. Hãy hỏi cộng đồng của bạn khóa của cơ sở y tế.
settings-network = Mạng
settings-notify = Thông báo trên màn hình
settings-notify-on = Bật
settings-notify-off = Tắt
settings-readonly = Các mục này được đặt trong tệp cấu hình ({ $path }); hãy sửa ở đó rồi khởi động lại meshtrace.

## Từ chối và dữ liệu không hợp lệ

login-title = Trang này đã bị khóa
login-text = Chỉ người chạy meshtrace trên máy tính này mới mở được trang này. Để mở, hãy chạy lệnh:
login-hint = Lệnh này mở trang trong trình duyệt bằng một đường liên kết chỉ dùng được một lần, trong vài phút.
login-expired = Đường liên kết này đã hết hạn hoặc đã được dùng. Hãy chạy lại lệnh “meshtrace ui”.
forbidden-title = Bị từ chối
forbidden-text = Trang này chỉ trả lời các yêu cầu gửi đến đúng địa chỉ của chính máy tính này.
csrf-failed = Biểu mẫu này đã cũ. Hãy quay lại, tải lại trang rồi thử lại.
not-found = Không có trang này.
error-title = Có lỗi xảy ra
err-empty = Hãy dán giấy xác nhận, hoặc chọn ảnh chụp mã QR của nó.
err-not-certificate = Đây không phải là mã giấy xác nhận. Hãy kiểm tra bạn đã chép đủ: mã bắt đầu bằng MTCT1:.
err-certificate-damaged = Giấy xác nhận này bị hỏng hoặc không do cơ sở y tế cấp. Hãy xin cơ sở y tế một giấy mới.
err-wrong-network = Giấy xác nhận này dành cho một mạng khác (“{ $network }”). Hãy hỏi cơ sở y tế thuộc mạng của bạn.
err-expired = Giấy xác nhận này đã hết hạn vào { $date }. Hãy xin cơ sở y tế một giấy mới.
err-not-yet-valid = Giấy xác nhận này chưa có hiệu lực trước { $date }. Hãy kiểm tra ngày giờ của máy tính.
err-untrusted = Giấy xác nhận này do một cơ sở y tế mà máy tính này không tin cậy cấp.
err-too-large = Tệp quá lớn (hơn { $mb } MB). Hãy chọn một ảnh nhỏ hơn của mã QR.
err-form-too-large = Dữ liệu bạn gửi quá lớn. Chỉ dán mã giấy xác nhận.
err-no-qr = Không tìm thấy mã QR trong ảnh này. Hãy chụp rõ hơn và gần mã hơn.
err-not-image = meshtrace không đọc được tệp này. Hãy dùng ảnh PNG hoặc JPEG chụp mã QR.
err-confirm = Hãy đánh dấu vào ô để xác nhận.
err-node-refused = meshtrace từ chối: { $reason }
err-already-used = Giấy xác nhận này đã được dùng: báo cáo của bạn đã được gửi. Mỗi giấy xác nhận chỉ dùng được một lần.
err-not-this-request = Giấy xác nhận này không dành cho mã yêu cầu tạo trên máy tính này, hoặc mã yêu cầu đó đã quá cũ. Hãy lấy mã yêu cầu mới (bước 1) và nhờ cơ sở y tế xác nhận lại.
err-bad-form = Biểu mẫu chưa được điền đúng. Hãy quay lại và thử lại.

## Dòng lệnh

cli-no-exposures = Không có tiếp xúc nguy cơ nào.
cli-exposure-high = NGUY CƠ CAO: bạn đã tiếp xúc gần với người nhiễm bệnh (phát hiện lúc { $found }).
cli-exposure-low = Nguy cơ thấp: một người tiếp xúc ngắn hoặc ở xa với bạn vừa có kết quả dương tính (phát hiện lúc { $found }).
cli-advice = Bạn cần làm gì: { advice-text }
cli-status-running = meshtrace đang chạy (tiến trình { $pid }) trong mạng { $network }
cli-status-data = dữ liệu:          { $dir }
cli-status-time = giờ của máy:      { $time }
cli-status-time-scaled = giờ của máy:      { $time }, đồng hồ ×{ $scale }
cli-status-radio = sóng vô tuyến:    { $kind } — { $sightings } lần nhận, { $malformed } gói lỗi
cli-status-radio-failed = LỖI SÓNG:         { $count } lần, lần cuối lúc { $when }: { $error }
cli-status-encounters = tiếp xúc:         { $stored } đã lưu, { $open } đang diễn ra
cli-status-reports = báo cáo đang giữ: { $count } phần thông báo
cli-status-exposures = tiếp xúc nguy cơ: { $count } ({ $high } nguy cơ cao)
cli-status-mesh = mạng ngang hàng:  { $count } thiết bị, mã định danh { $peer }
cli-status-page = trang web:        { $url } (mở bằng lệnh “meshtrace ui”)
cli-status-purge-held = dữ liệu cũ:       tạm thời được giữ lại: đồng hồ đang chỉ { $clock }, quá thời hạn lưu kể từ ngày cuối cùng được xác nhận là đúng ({ $known }); không xóa gì cho đến khi một thiết bị khác xác nhận ngày hoặc đồng hồ được chỉnh lại
cli-status-unsent = báo cáo của bạn:  { $count } phần đang chờ gửi
cli-ui-opened = Đã mở trang trong trình duyệt. Nếu trang không mở, hãy chạy “meshtrace ui --print-url” và mở đường liên kết được in ra (chỉ dùng được một lần, trong { $minutes } phút).
cli-ui-no-browser = Không mở được trình duyệt ở đây. Hãy mở đường liên kết này trên máy tính này (chỉ dùng được một lần, trong { $minutes } phút):
cli-request-qr = Cùng mã đó dưới dạng mã QR, để cơ sở y tế quét:

## Thông báo trên màn hình

notify-high-title = Tiếp xúc gần với người nhiễm bệnh
notify-low-title = Một người tiếp xúc ngắn với bạn có kết quả dương tính
notify-open = Mở meshtrace để xem bạn cần làm gì.
