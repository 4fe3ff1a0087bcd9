//! Form bodies as the fakes of paid services (Stripe, Twilio) receive them: both APIs take
//! `application/x-www-form-urlencoded` requests.

/// `application/x-www-form-urlencoded` → pairs (`+` is a space, `%XX` a byte). `None` if malformed.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    fn decode(s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}
