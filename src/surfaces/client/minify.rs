//! The client as the browser needs it: its tokens with only the whitespace that separates two
//! words, no comments, and no semicolon a `}` makes needless. The client's own code only
//! (semicolons everywhere, no template literals, no empty statements such as `while (x);`):
//! not a minifier for any JavaScript.

/// `js` without comments and without whitespace between tokens, except one space where two
/// words (or `+ +`, `- -`) would otherwise run together, and without the semicolon of a
/// statement that a `}` ends (`return;}` is `return}`).
pub fn minify(js: &str) -> String {
    let chars: Vec<char> = js.chars().collect();
    let mut out = String::with_capacity(js.len());
    let mut spaced = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            spaced = true;
            i += 1;
            continue;
        }
        let end = if c == '/' && chars.get(i + 1) == Some(&'/') {
            // A comment: to the end of its line.
            i = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |n| i + n);
            continue;
        } else if c == '"' || c == '\'' || c == '`' {
            quoted(&chars, i)
        } else if c == '/' && starts_regex(&out) {
            regex(&chars, i)
        } else if is_word(c) {
            i + chars[i..].iter().take_while(|&&c| is_word(c)).count()
        } else {
            i + 1
        };
        let token: String = chars[i..end].iter().collect();
        if token == "}" && out.ends_with(';') {
            out.pop();
        }
        if spaced && needs_space(out.chars().last(), c) {
            out.push(' ');
        }
        out.push_str(&token);
        spaced = false;
        i = end;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether two tokens the source spaced apart must stay apart.
fn needs_space(before: Option<char>, next: char) -> bool {
    match before {
        Some(b) => (is_word(b) && is_word(next)) || (b == next && (b == '+' || b == '-')),
        None => false,
    }
}

/// The end of the string starting at `start` (after its closing quote).
fn quoted(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    (i + 1).min(chars.len())
}

/// Whether a `/` here starts a regular expression rather than a division: after an operator,
/// an opening bracket, or a keyword that takes an expression.
fn starts_regex(out: &str) -> bool {
    let Some(last) = out.chars().last() else {
        return true;
    };
    if "(,=:[!&|?{};+-*%<>~^".contains(last) {
        return true;
    }
    let word: String = out
        .chars()
        .rev()
        .take_while(|&c| is_word(c))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    matches!(
        word.as_str(),
        "return"
            | "typeof"
            | "case"
            | "delete"
            | "void"
            | "throw"
            | "in"
            | "of"
            | "new"
            | "else"
            | "do"
    )
}

/// The end of the regular expression starting at `start` (after its flags).
fn regex(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    let mut in_class = false;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    i += 1;
    while i < chars.len() && chars[i].is_ascii_alphabetic() {
        i += 1;
    }
    i.min(chars.len())
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn whitespace_goes_where_no_two_words_meet() {
        assert_eq!(
            minify("var a = b + +c; // why\nif (a) {\n  return typeof a;\n}\n"),
            "var a=b+ +c;if(a){return typeof a}"
        );
        assert_eq!(
            minify("for (;;) {\n  f(\";}\");\n}\n"),
            "for(;;){f(\";}\")}"
        );
        assert_eq!(minify("x = y - -1;"), "x=y- -1;");
    }

    #[test]
    fn strings_and_regular_expressions_keep_every_character() {
        assert_eq!(
            minify(r#"s = "a // b, c" + 'd \' e';"#),
            r#"s="a // b, c"+'d \' e';"#
        );
        assert_eq!(
            minify("p = t.replace(/[^\\x21-\\x7e] \\/x/g, f);"),
            "p=t.replace(/[^\\x21-\\x7e] \\/x/g,f);"
        );
        assert_eq!(minify("return /a b/.test(s);"), "return/a b/.test(s);");
        // A division is no regular expression.
        assert_eq!(minify("h = (a) / 2 / b;"), "h=(a)/2/b;");
        assert_eq!(minify("r = [a, b] / [c];"), "r=[a,b]/[c];");
    }
}
