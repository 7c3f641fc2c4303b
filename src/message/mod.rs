//! Message text as RFC 5322 and RFC 2047 write it, read and written once
//! for every part of tinymta that handles it (the sendmail entry point,
//! the outgoing rewriting, the push services). A leaf: it imports nothing
//! of config, delivery, the server or the entry points, so that each of
//! them can use it and it can be tested alone.

pub mod encoded_word;
pub mod header;
