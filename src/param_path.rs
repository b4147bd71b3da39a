//! [`ParamPath`]: where a value sits in a request body (`messages[2].content[0]`), for the
//! `param` of an error. It is written out only when an error names it, not for every message
//! and part translated: a chat request of a long conversation formatted two or three such
//! strings per message before. Pure.

use std::fmt;

use crate::error::ProxyError;

/// A path from the body's top level to one value.
#[derive(Debug, Clone, Copy)]
pub enum ParamPath<'a> {
    /// A top-level field.
    Field(&'a str),
    /// An element of the array at the path.
    Index(&'a ParamPath<'a>, usize),
    /// A member of the object at the path.
    Member(&'a ParamPath<'a>, &'a str),
}

impl<'a> ParamPath<'a> {
    /// The path of element `index` of this array.
    pub fn index(&'a self, index: usize) -> ParamPath<'a> {
        ParamPath::Index(self, index)
    }

    /// The path of member `name` of this object.
    pub fn member(&'a self, name: &'a str) -> ParamPath<'a> {
        ParamPath::Member(self, name)
    }

    /// A 400 `invalid_value` naming this path.
    pub fn invalid(&self, message: impl Into<String>) -> ProxyError {
        ProxyError::invalid_param(&self.to_string(), message)
    }
}

impl fmt::Display for ParamPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamPath::Field(name) => f.write_str(name),
            ParamPath::Index(array, index) => write!(f, "{array}[{index}]"),
            ParamPath::Member(object, name) => write!(f, "{object}.{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_the_api_names_them() {
        let messages = ParamPath::Field("messages");
        let message = messages.index(3);
        let content = message.member("content");
        let part = content.index(0);
        assert_eq!(
            part.member("image_url").member("url").to_string(),
            "messages[3].content[0].image_url.url"
        );
        assert_eq!(
            message
                .member("tool_calls")
                .index(1)
                .member("function")
                .to_string(),
            "messages[3].tool_calls[1].function"
        );
        let ProxyError::BadRequest { param, .. } = content.invalid("bad") else {
            panic!("a 400");
        };
        assert_eq!(param.as_deref(), Some("messages[3].content"));
    }
}
