//! QR codes between a person and a clinic: drawn as SVG for the page and as
//! Unicode half blocks for a terminal, and read back from an uploaded photo
//! or picture (PNG or JPEG only).

use std::io::Cursor;

/// Largest picture side decoded (pixels); a larger photo is refused before
/// its pixels are allocated.
pub const MAX_IMAGE_SIDE: u32 = 12_000;
/// Most memory the picture decoder may allocate (bytes).
pub const MAX_IMAGE_ALLOC: u64 = 256 * 1024 * 1024;
/// Pictures are scaled down to this side (pixels) before the QR search: a
/// phone photo of a code is far larger than the search needs, and the
/// search time grows with the pixels.
pub const MAX_SEARCH_SIDE: u32 = 1_600;

/// Why a picture gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrReadError {
    /// Not a PNG or JPEG this reader decodes (or a damaged one).
    #[error("not a PNG or JPEG picture")]
    NotImage,
    /// A picture, but no readable QR code in it.
    #[error("no QR code found in the picture")]
    NoCode,
}

/// Why a text cannot be drawn as a QR code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the text is too long for a QR code")]
pub struct QrTooLong;

fn code(text: &str) -> Result<qrcode::QrCode, QrTooLong> {
    // Medium error correction: survives a slightly blurred phone photo.
    qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|_| QrTooLong)
}

/// The QR code of `text` as an SVG element (black on white, with its quiet
/// zone), scaled by the page's CSS.
pub fn svg(text: &str) -> Result<String, QrTooLong> {
    let c = code(text)?;
    let svg = c
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    // Drop the XML declaration: the element goes inside the page.
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    })
}

/// The QR code of `text` for a terminal: two rows of modules per line in
/// Unicode half blocks. The light modules (and the quiet zone around the
/// code) are the ones drawn, so that the code reads the right way round on
/// the usual light-on-dark terminal.
pub fn terminal(text: &str) -> Result<String, QrTooLong> {
    use qrcode::render::unicode::Dense1x2;
    let c = code(text)?;
    Ok(c.render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Reads the first QR code in a PNG or JPEG picture.
pub fn read(bytes: &[u8]) -> Result<String, QrReadError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| QrReadError::NotImage)?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        _ => return Err(QrReadError::NotImage),
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|_| QrReadError::NotImage)?;
    let mut luma = img.to_luma8();
    let (w, h) = luma.dimensions();
    if w.max(h) > MAX_SEARCH_SIDE {
        let scale = f64::from(MAX_SEARCH_SIDE) / f64::from(w.max(h));
        let nw = ((f64::from(w) * scale).round() as u32).max(1);
        let nh = ((f64::from(h) * scale).round() as u32).max(1);
        luma = image::imageops::resize(&luma, nw, nh, image::imageops::FilterType::Triangle);
    }
    let (w, h) = luma.dimensions();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
            luma.get_pixel(x as u32, y as u32).0[0]
        });
    prepared
        .detect_grids()
        .into_iter()
        .find_map(|g| g.decode().ok().map(|(_, text)| text))
        .ok_or(QrReadError::NoCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of the QR code of `text`, `scale` pixels per module.
    pub(crate) fn png_of(text: &str, scale: u32) -> Vec<u8> {
        let c = code(text).unwrap();
        let width = c.width() as u32;
        let quiet = 4;
        let side = (width + 2 * quiet) * scale;
        let colors = c.to_colors();
        let img = image::GrayImage::from_fn(side, side, |x, y| {
            let (mx, my) = (x / scale, y / scale);
            let dark = mx >= quiet
                && my >= quiet
                && mx < quiet + width
                && my < quiet + width
                && colors[((my - quiet) * width + (mx - quiet)) as usize] == qrcode::Color::Dark;
            image::Luma([if dark { 0 } else { 255 }])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_drawn_code_reads_back() {
        let text = "MTCT1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        assert_eq!(read(&png_of(text, 4)).unwrap(), text);
        // A big picture is scaled down first and still reads.
        assert_eq!(read(&png_of(text, 40)).unwrap(), text);
    }

    #[test]
    fn pictures_without_a_code_and_other_files_are_told_apart() {
        let blank = {
            let img = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            out
        };
        assert_eq!(read(&blank), Err(QrReadError::NoCode));
        assert_eq!(read(b"MTCT1:not a picture"), Err(QrReadError::NotImage));
        assert_eq!(read(b"GIF89a....."), Err(QrReadError::NotImage));
        let mut truncated = png_of("x", 4);
        truncated.truncate(truncated.len() / 2);
        assert_eq!(read(&truncated), Err(QrReadError::NotImage));
    }

    #[test]
    fn the_terminal_drawing_reads_back_as_the_code() {
        let text = "MTRQ1:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let drawing = terminal(text).unwrap();
        let rows: Vec<Vec<char>> = drawing.lines().map(|l| l.chars().collect()).collect();
        let (w, h) = (rows[0].len() as u32, 2 * rows.len() as u32);
        let scale = 4;
        // A drawn half is a light module: white on the dark background.
        let img = image::GrayImage::from_fn(w * scale, h * scale, |x, y| {
            let (col, half) = ((x / scale) as usize, y / scale);
            let c = rows[(half / 2) as usize].get(col).copied().unwrap_or(' ');
            let drawn = if half % 2 == 0 {
                "█▀".contains(c)
            } else {
                "█▄".contains(c)
            };
            image::Luma([if drawn { 255 } else { 0 }])
        });
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(read(&png).unwrap(), text);
    }

    #[test]
    fn svg_and_terminal_drawings_are_complete() {
        let s = svg("MTRQ1:ABC").unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{s}"
        );
        let t = terminal("MTRQ1:ABC").unwrap();
        assert!(t.lines().count() > 10);
        assert!(t.chars().all(|c| " ▀▄█\n".contains(c)), "{t}");
        assert_eq!(svg(&"x".repeat(5000)), Err(QrTooLong));
    }
}
