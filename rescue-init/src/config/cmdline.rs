//! Kernel command-line tokenising, as the kernel itself splits `/proc/cmdline`. Pure.
//!
//! The kernel's rules (`next_arg` in lib/cmdline.c), restated:
//! - parameters are separated by whitespace outside double quotes;
//! - a `"` anywhere toggles quoting, so `a="x y"` and `"a=x y"` are one parameter;
//! - the name ends at the first `=`, which is found even inside quotes;
//! - one `"` right after the `=` is dropped, and so is one `"` at the very end of the
//!   parameter; quotes inside the value stay;
//! - a parameter without `=` has no value (`rescue.dry_run` is not `rescue.dry_run=`).
//!
//! There is no escape character. `--` hands the rest to init as arguments; since we are
//! init, the parameters after it are read too.

/// One parameter of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name (`rescue.name`, `console`, `quiet`).
    pub key: String,
    /// The value after the first `=`, quotes removed; `None` without `=`.
    pub value: Option<String>,
}

/// Splits a kernel command line into parameters.
pub fn tokenize(cmdline: &str) -> Vec<Param> {
    let mut out = Vec::new();
    let mut rest = cmdline.trim_start();
    while !rest.is_empty() {
        let (quoted, body) = match rest.strip_prefix('"') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let mut in_quote = quoted;
        let mut equals = None;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            if c.is_whitespace() && !in_quote {
                end = i;
                break;
            }
            if equals.is_none() && c == '=' {
                equals = Some(i);
            }
            if c == '"' {
                in_quote = !in_quote;
            }
        }
        let token = &body[..end];
        let param = match equals {
            None => {
                let key = if quoted {
                    token.strip_suffix('"').unwrap_or(token)
                } else {
                    token
                };
                Param {
                    key: key.to_owned(),
                    value: None,
                }
            }
            Some(eq) => {
                let key = &token[..eq];
                let mut value = &token[eq + 1..];
                if let Some(v) = value.strip_prefix('"') {
                    value = v.strip_suffix('"').unwrap_or(v);
                } else if quoted {
                    value = value.strip_suffix('"').unwrap_or(value);
                }
                Param {
                    key: key.to_owned(),
                    value: Some(value.to_owned()),
                }
            }
        };
        if param.key != "--" || param.value.is_some() {
            out.push(param);
        }
        rest = body[end..].trim_start();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(key: &str, value: Option<&str>) -> Param {
        Param {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Vec<Param>)] = &[
            ("", vec![]),
            ("   \n", vec![]),
            ("quiet", vec![p("quiet", None)]),
            ("a=b c=d\n", vec![p("a", Some("b")), p("c", Some("d"))]),
            ("a=", vec![p("a", Some(""))]),
            ("a==b", vec![p("a", Some("=b"))]),
            ("root=UUID=x", vec![p("root", Some("UUID=x"))]),
            ("a=\"x y\" b", vec![p("a", Some("x y")), p("b", None)]),
            ("\"a=x y\" b", vec![p("a", Some("x y")), p("b", None)]),
            ("\"flag\"", vec![p("flag", None)]),
            ("a=x\"y z\"w", vec![p("a", Some("x\"y z\"w"))]),
            (
                "a=\"unterminated  rest",
                vec![p("a", Some("unterminated  rest"))],
            ),
            ("\ta=1\t\tb=2", vec![p("a", Some("1")), p("b", Some("2"))]),
            ("x -- y=1", vec![p("x", None), p("y", Some("1"))]),
            ("a=ü b", vec![p("a", Some("ü")), p("b", None)]),
        ];
        for (input, want) in cases {
            assert_eq!(&tokenize(input), want, "input {input:?}");
        }
    }
}
