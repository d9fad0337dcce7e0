# meshtrace — trang của cơ sở y tế (`meshtrace issuer serve`), tiếng Việt. Mỗi
# thông điệp ở đây đều có trong en.ftl (có kiểm tra tự động). Những từ dùng
# chung với trang của người dùng (ngày tháng, từ chối) nằm ở ui/locales/vi.ftl.

issuer-app-name = meshtrace — cơ sở y tế
issuer-footer = Trang này chỉ chạy trên máy tính này. Cơ sở y tế không bao giờ biết người bệnh đã gặp những ai: chỉ xác nhận rằng họ có kết quả xét nghiệm dương tính.

issuer-title = Xác nhận kết quả dương tính
issuer-lead = Trước hết, hãy kiểm tra kết quả xét nghiệm của người bệnh. Sau đó dán mã yêu cầu hiện trên trang meshtrace của họ, hoặc tải lên ảnh chụp mã QR, chọn các ngày cần báo rồi bấm xác nhận.
issuer-network = Trang này chỉ xác nhận yêu cầu của mạng “{ $network }”.
issuer-any-network = Trang này xác nhận yêu cầu của mọi mạng: sau khi xác nhận, hãy kiểm tra mạng hiện ra đúng là mạng của cộng đồng mình.
issuer-code-label = Mã yêu cầu (bắt đầu bằng MTRQ1:)
issuer-photo-label = Hoặc ảnh chụp mã QR (PNG hoặc JPEG, tối đa { $mb } MB)
issuer-window-legend = Khoảng thời gian tiếp xúc cần báo
issuer-window-hint = Thường tính từ hai ngày trước khi có triệu chứng đầu tiên (nếu không có triệu chứng thì từ hai ngày trước ngày xét nghiệm) đến hôm nay; tối đa { $max } ngày.
issuer-first-day = Ngày đầu
issuer-last-day = Ngày cuối
issuer-valid-label = Số ngày người bệnh có để gửi báo cáo
issuer-submit = Xác nhận
issuer-nothing-issued = Chưa có gì được xác nhận.

issuer-done-title = Giấy xác nhận đã sẵn sàng
issuer-done-lead = Hãy đưa cho người bệnh: trên trang meshtrace của họ (mục “Tôi có kết quả dương tính”, bước 2), họ quét mã QR này hoặc dán đoạn mã bên dưới.
issuer-done-network = Mạng: { $network }
issuer-done-window = Các lần tiếp xúc từ { $first } đến { $last }
issuer-done-until = Dùng được đến { $until }
issuer-cert-label = Mã giấy xác nhận
issuer-qr-label = Giấy xác nhận dưới dạng mã QR
issuer-another = Xác nhận yêu cầu khác

issuer-err-empty = Hãy dán mã yêu cầu hoặc chọn ảnh chụp mã QR.
issuer-err-too-long = Đoạn chữ này quá dài, không thể là mã yêu cầu. Chỉ dán đoạn mã bắt đầu bằng “MTRQ1:”.
issuer-err-certificate-given = Đây là mã giấy xác nhận (MTCT1:…), không phải mã yêu cầu. Mã yêu cầu bắt đầu bằng “MTRQ1:”.
issuer-err-not-request = Đây không phải là mã yêu cầu của meshtrace. Mã yêu cầu bắt đầu bằng “MTRQ1:”.
issuer-err-cut = Mã yêu cầu có vẻ bị thiếu. Hãy sao chép lại toàn bộ mã.
issuer-err-typo = Mã yêu cầu bị gõ sai: các ký tự kiểm tra không khớp. Hãy sao chép lại, hoặc tải lên ảnh chụp mã QR.
issuer-err-unreadable = Không đọc được mã yêu cầu này. Hãy nhờ người bệnh mở lại mã.
issuer-err-network = Yêu cầu này thuộc mạng “{ $found }”, nhưng trang này xác nhận cho mạng “{ $expected }”. Hãy kiểm tra người bệnh có thuộc cộng đồng của mình không.
issuer-err-future = Ngày cuối không thể sau hôm nay ({ $today }).
issuer-err-reversed = Ngày đầu ({ $first }) lại sau ngày cuối ({ $last }).
issuer-err-window-long = Các ngày đã chọn kéo dài { $days } ngày; chỉ được báo tối đa { $max } ngày.
issuer-err-valid = Người bệnh có thể có từ { $min } đến { $max } ngày để gửi báo cáo.
issuer-err-date = Hãy chọn cả hai ngày bằng ô chọn ngày.
issuer-err-not-image = Tệp này không phải là ảnh PNG hoặc JPEG.
issuer-err-no-qr = Không tìm thấy mã QR trong ảnh. Hãy chụp lại gần hơn và rõ hơn, hoặc dán mã.
issuer-err-refused = Không tạo được giấy xác nhận ({ $reason }).
issuer-err-form = Biểu mẫu gửi đến chưa đầy đủ. Hãy điền lại.

issuer-login-title = Mở trang của cơ sở y tế bằng đường liên kết
issuer-login-text = Trang này chỉ mở được bằng đường liên kết dùng một lần mà `meshtrace issuer serve` in ra khi khởi động. Muốn có đường liên kết mới, hãy dừng chương trình (Ctrl-C) rồi chạy lại:

# `meshtrace issuer serve` trong cửa sổ dòng lệnh.
issuer-cli-opened = Trang của cơ sở y tế đã mở trong trình duyệt. Bấm Ctrl-C để dừng.
issuer-cli-link = Trang của cơ sở y tế đang chạy. Hãy mở đường liên kết này trên máy tính này (chỉ dùng được một lần, trong { $minutes } phút); bấm Ctrl-C để dừng trang:
