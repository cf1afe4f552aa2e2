//! Writing HTML: the one place where text from a capture (thread names, paths, host names) is
//! escaped for a page. The page is also well-formed XML (every element closed, no named entity
//! but the five of XML), so an XML parser can check it.

use std::{borrow::Cow, fmt::Write as _};

use crate::table::visible;

/// `text` safe inside an HTML element or a quoted attribute: control characters shown as visible
/// escapes (as on a terminal), then `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(text: &str) -> Cow<'_, str> {
    let text = visible(text);
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A page being written.
#[derive(Default)]
pub struct Html {
    buf: String,
}

impl Html {
    /// Markup written by this program (never text from a capture).
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    /// Text, escaped.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.buf.push_str(&escape(text));
        self
    }

    /// `<tag>text</tag>`, the text escaped.
    pub fn element(&mut self, tag: &str, text: &str) -> &mut Self {
        let _ = write!(self.buf, "<{tag}>{}</{tag}>", escape(text));
        self
    }

    /// A two-column table of labels and values.
    pub fn fields(&mut self, fields: &[(&str, String)]) -> &mut Self {
        self.raw(r#"<table class="fields"><tbody>"#);
        for (label, value) in fields {
            self.raw("<tr>")
                .element("th", label)
                .element("td", value)
                .raw("</tr>");
        }
        self.raw("</tbody></table>")
    }

    /// A table with a header row and rows of (class, text) cells.
    pub fn table(&mut self, id: &str, header: &[&str], rows: &[Vec<(&str, String)>]) -> &mut Self {
        let _ = write!(self.buf, r#"<table id="{id}"><thead><tr>"#);
        for column in header {
            self.element("th", column);
        }
        self.raw("</tr></thead><tbody>");
        for row in rows {
            self.raw("<tr>");
            for (class, text) in row {
                let _ = write!(self.buf, r#"<td class="{class}">{}</td>"#, escape(text));
            }
            self.raw("</tr>");
        }
        self.raw("</tbody></table>")
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_make_markup() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(escape("a\u{1b}[31m"), "a\\u{1b}[31m");
    }
}
