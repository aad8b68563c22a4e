//! Text that a page or terminal shows to a person (a client's name, its contacts): which characters it may
//! hold. Refused are the characters that change how the rest of the text is laid out or that cannot be seen
//! (Unicode TR36 §2 "Visual Security Issues"; Trojan Source, CVE-2021-42574): a U+202E RIGHT-TO-LEFT OVERRIDE in
//! a client name reverses the rest of the consent sentence, a U+200B ZERO WIDTH SPACE makes two names look alike.
//!
//! The rule, by Unicode general category (UAX #44 §5.7.1, the Unicode Character Database of
//! `unicode-general-category`):
//! - `Cc` controls (C0, DEL, C1), `Zl` U+2028 and `Zp` U+2029 (line and paragraph breaks);
//! - every `Cf` format character: among them the bidirectional embeddings, overrides and isolates
//!   (U+202A–U+202E, U+2066–U+2069), the marks U+200E, U+200F and U+061C, the zero-width characters
//!   U+200B–U+200D, U+2060 and U+FEFF, the soft hyphen U+00AD, and the tag characters U+E0000–U+E007F;
//! - the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, letters (`Lo`) that render as nothing (TR36 §2.9,
//!   UTS #39 §3.1 "confusable"/invisible characters).

use unicode_general_category::{get_general_category, GeneralCategory};

/// Hangul fillers: `Lo` letters without a visible glyph.
const INVISIBLE_LETTERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

/// Whether `c` may not appear in text shown to a person (see the module documentation).
pub fn is_hidden(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || INVISIBLE_LETTERS.contains(&c)
}

/// The first character of `text` that may not be shown, if any.
pub fn first_hidden(text: &str) -> Option<char> {
    text.chars().find(|c| is_hidden(*c))
}

/// `c` as its code point, `U+202E`, for error messages (the character itself would do what it is refused for).
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_controls_are_refused() {
        // Embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), marks.
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{200E}', '\u{200F}', '\u{061C}'])
        {
            assert!(is_hidden(c), "{}", code_point(c));
        }
    }

    #[test]
    fn invisible_characters_are_refused() {
        for c in [
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2061}',
            '\u{2064}',
            '\u{180E}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FFF9}',
            '\u{1D173}',
        ] {
            assert!(is_hidden(c), "{}", code_point(c));
        }
    }

    #[test]
    fn controls_and_line_breaks_are_refused() {
        for c in [
            '\u{0}', '\t', '\n', '\r', '\u{1B}', '\u{7F}', '\u{85}', '\u{9F}', '\u{2028}',
            '\u{2029}',
        ] {
            assert!(is_hidden(c), "{}", code_point(c));
        }
    }

    #[test]
    fn ordinary_text_in_any_script_is_allowed() {
        for name in [
            "My MCP Client",
            "Zed (preview) — v1.2",
            "Cliente de Ñandú",
            "Клиент",
            "عميل MCP",
            "לקוח",
            "客户端 ツール",
            "클라이언트",
            "हिन्दी",
            "Emoji 🚀 ❤️ ok", // U+FE0F, a variation selector (Mn), stays: emoji need it
            "a\u{0301}",      // a combining accent (Mn)
            "\u{00A0}nbsp",   // a visible-width space (Zs)
        ] {
            assert_eq!(first_hidden(name), None, "{name:?}");
        }
    }

    #[test]
    fn the_first_hidden_character_is_named() {
        assert_eq!(first_hidden("Safe\u{202E}txt.exe"), Some('\u{202E}'));
        assert_eq!(first_hidden("a\u{200B}b\u{202E}"), Some('\u{200B}'));
        assert_eq!(code_point('\u{202E}'), "U+202E");
        assert_eq!(code_point('\u{E0041}'), "U+E0041");
        assert_eq!(code_point('\u{AD}'), "U+00AD");
    }
}
