//! DNS messages on the wire (RFC 1035 4.1): building a query, and reading a
//! response that may be hostile. Every read is bounds-checked, compression
//! pointers must point backwards (so they cannot loop) and are limited in
//! number, names are limited to 255 octets: no input makes this panic, loop
//! or read past the packet.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

/// RFC 1035 2.3.4: a name is at most 255 octets on the wire.
const MAX_NAME_OCTETS: usize = 255;
/// Compression pointers followed for one name; a real name needs a few.
const MAX_POINTER_JUMPS: usize = 32;
/// RFC 1035 4.1.1: the fixed header.
const HEADER_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The packet ends in the middle of something.
    Truncated,
    /// A compression pointer that points forward or to itself, or too many.
    BadPointer,
    /// A label type other than a plain label or a pointer (RFC 1035 4.1.4).
    BadLabel,
    NameTooLong,
    /// An A or AAAA record of the wrong length, or data past its rdlength.
    BadRecord,
    /// A name we were asked to query cannot be encoded.
    BadQueryName,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::BadPointer => "bad compression pointer",
            WireError::BadLabel => "bad label type",
            WireError::NameTooLong => "name longer than 255 octets",
            WireError::BadRecord => "malformed record",
            WireError::BadQueryName => "name cannot be queried",
        })
    }
}

impl std::error::Error for WireError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// `exchange` is empty for the root name `.`: a null MX (RFC 7505).
    Mx {
        preference: u16,
        exchange: String,
    },
    /// SOA: only the MINIMUM field matters here (negative caching, RFC 2308).
    Soa {
        minimum: u32,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Lower case, without the trailing dot.
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub data: RData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub truncated: bool,
    pub rcode: u8,
    pub question: Option<Question>,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

/// A standard query with recursion desired, for one name and type, class IN.
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let name = name.trim_end_matches('.');
    let mut packet = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    packet.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    packet.extend_from_slice(&[0; 6]); // AN, NS, AR counts
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(WireError::BadQueryName);
            }
            packet.push(label.len() as u8);
            packet.extend_from_slice(label.as_bytes());
        }
    }
    packet.push(0);
    if packet.len() - HEADER_LEN > MAX_NAME_OCTETS {
        return Err(WireError::BadQueryName);
    }
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(packet)
}

/// Reads a whole response.
pub fn parse_response(packet: &[u8]) -> Result<Response, WireError> {
    let mut reader = Reader { packet, pos: 0 };
    let id = reader.u16()?;
    let flags = reader.u16()?;
    let qdcount = reader.u16()?;
    let ancount = reader.u16()?;
    let nscount = reader.u16()?;
    let _arcount = reader.u16()?;
    let mut question = None;
    for _ in 0..qdcount {
        let name = reader.name()?;
        let qtype = reader.u16()?;
        let _class = reader.u16()?;
        question.get_or_insert(Question { name, qtype });
    }
    // Each record takes at least 11 octets, so the counts cannot make these
    // loops outlast the packet.
    let mut answers = Vec::new();
    for _ in 0..ancount {
        answers.push(reader.record()?);
    }
    let mut authority = Vec::new();
    for _ in 0..nscount {
        authority.push(reader.record()?);
    }
    // The additional section is not needed and not trusted.
    Ok(Response {
        id,
        is_response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        rcode: (flags & 0xf) as u8,
        question,
        answers,
        authority,
    })
}

struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let bytes = self.packet.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn name(&mut self) -> Result<String, WireError> {
        let (name, next) = read_name(self.packet, self.pos)?;
        self.pos = next;
        Ok(name)
    }

    fn record(&mut self) -> Result<Record, WireError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let _class = self.u16()?;
        let ttl = self.u32()?;
        let rdlength = usize::from(self.u16()?);
        let start = self.pos;
        let end = start + rdlength;
        if end > self.packet.len() {
            return Err(WireError::Truncated);
        }
        let data = match rtype {
            TYPE_A => {
                let b: [u8; 4] = self
                    .bytes(rdlength)?
                    .try_into()
                    .map_err(|_| WireError::BadRecord)?;
                RData::A(Ipv4Addr::from(b))
            }
            TYPE_AAAA => {
                let b: [u8; 16] = self
                    .bytes(rdlength)?
                    .try_into()
                    .map_err(|_| WireError::BadRecord)?;
                RData::Aaaa(Ipv6Addr::from(b))
            }
            TYPE_CNAME => RData::Cname(self.name()?),
            TYPE_MX => {
                let preference = self.u16()?;
                RData::Mx {
                    preference,
                    exchange: self.name()?,
                }
            }
            TYPE_SOA => {
                let _mname = self.name()?;
                let _rname = self.name()?;
                self.bytes(16)?; // serial, refresh, retry, expire
                RData::Soa {
                    minimum: self.u32()?,
                }
            }
            _ => {
                self.pos = end;
                RData::Other
            }
        };
        // The data must fill its rdlength exactly.
        if self.pos != end {
            return Err(WireError::BadRecord);
        }
        Ok(Record {
            name,
            rtype,
            ttl,
            data,
        })
    }
}

/// Reads a possibly compressed name at `pos` (RFC 1035 4.1.4). Returns it in
/// lower case without the trailing dot (the root is ""), and the position
/// after it in the record being read. Octets that are not printable ASCII,
/// and dots inside a label, are written as `\DDD`.
fn read_name(packet: &[u8], mut pos: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut wire_len = 0;
    let mut after: Option<usize> = None;
    let mut jumps = 0;
    loop {
        let len = usize::from(*packet.get(pos).ok_or(WireError::Truncated)?);
        match len & 0xc0 {
            0x00 => {
                wire_len += len + 1;
                if wire_len > MAX_NAME_OCTETS {
                    return Err(WireError::NameTooLong);
                }
                if len == 0 {
                    return Ok((name, after.unwrap_or(pos + 1)));
                }
                let label = packet
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(WireError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(b.to_ascii_lowercase() as char);
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                pos += 1 + len;
            }
            0xc0 => {
                let low = usize::from(*packet.get(pos + 1).ok_or(WireError::Truncated)?);
                let target = ((len & 0x3f) << 8) | low;
                // Only backwards: a pointer to itself or beyond could loop.
                jumps += 1;
                if target >= pos || jumps > MAX_POINTER_JUMPS {
                    return Err(WireError::BadPointer);
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response header: id, flags, counts.
    pub fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16) -> Vec<u8> {
        let mut p = Vec::new();
        for v in [id, flags, qd, an, ns, 0] {
            p.extend_from_slice(&v.to_be_bytes());
        }
        p
    }

    pub fn encode_name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A record with a compression pointer to the question name (offset 12).
    pub fn record_to_question(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut r = vec![0xc0, 12];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    fn mx_response() -> Vec<u8> {
        let mut p = header(0x1234, 0x8180, 1, 2, 0);
        p.extend(encode_name("Example.ORG"));
        p.extend_from_slice(&[0, 15, 0, 1]);
        let mut rdata = vec![0, 10];
        rdata.extend(encode_name("mx1.example.org"));
        p.extend(record_to_question(TYPE_MX, 300, &rdata));
        // The second exchange is compressed: "mx2" + a pointer to the question name.
        let rdata = [0, 20, 3, b'm', b'x', b'2', 0xc0, 12];
        p.extend(record_to_question(TYPE_MX, 60, &rdata));
        p
    }

    #[test]
    fn query_encoding() {
        let q = build_query(0xabcd, "mx.Example.org.", TYPE_MX).unwrap();
        let mut expected = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend(encode_name("mx.Example.org"));
        expected.extend_from_slice(&[0, 15, 0, 1]);
        assert_eq!(q, expected);
        assert_eq!(
            build_query(1, &format!("{}.org", "a".repeat(64)), TYPE_A),
            Err(WireError::BadQueryName)
        );
        assert_eq!(
            build_query(1, "a..org", TYPE_A),
            Err(WireError::BadQueryName)
        );
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(build_query(1, &long, TYPE_A), Err(WireError::BadQueryName));
    }

    #[test]
    fn mx_answers_with_compression() {
        let r = parse_response(&mx_response()).unwrap();
        assert_eq!(r.id, 0x1234);
        assert!(r.is_response && !r.truncated);
        assert_eq!(r.rcode, RCODE_NOERROR);
        assert_eq!(
            r.question,
            Some(Question {
                name: "example.org".into(),
                qtype: TYPE_MX
            })
        );
        assert_eq!(r.answers.len(), 2);
        assert_eq!(
            r.answers[0].data,
            RData::Mx {
                preference: 10,
                exchange: "mx1.example.org".into()
            }
        );
        assert_eq!(r.answers[0].name, "example.org");
        assert_eq!(
            r.answers[1].data,
            RData::Mx {
                preference: 20,
                exchange: "mx2.example.org".into()
            }
        );
        assert_eq!(r.answers[1].ttl, 60);
    }

    #[test]
    fn addresses_and_null_mx() {
        let mut p = header(1, 0x8180, 1, 3, 0);
        p.extend(encode_name("a.test"));
        p.extend_from_slice(&[0, 1, 0, 1]);
        p.extend(record_to_question(TYPE_A, 5, &[127, 0, 0, 2]));
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        p.extend(record_to_question(TYPE_AAAA, 5, &v6));
        p.extend(record_to_question(TYPE_MX, 5, &[0, 0, 0]));
        let r = parse_response(&p).unwrap();
        assert_eq!(r.answers[0].data, RData::A(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(r.answers[1].data, RData::Aaaa(Ipv6Addr::LOCALHOST));
        assert_eq!(
            r.answers[2].data,
            RData::Mx {
                preference: 0,
                exchange: String::new()
            }
        );
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        let good = mx_response();
        // Every truncation of a good packet is an error or a shorter parse.
        for len in 0..good.len() {
            assert!(parse_response(&good[..len]).is_err(), "len {len}");
        }
        // A pointer to itself.
        let mut p = header(1, 0x8180, 1, 0, 0);
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_response(&p), Err(WireError::BadPointer));
        // Two pointers pointing at each other (the second points forward).
        let mut p = header(1, 0x8180, 1, 0, 0);
        p.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse_response(&p), Err(WireError::BadPointer));
        // A pointer past the end.
        let mut p = header(1, 0x8180, 1, 0, 0);
        p.extend_from_slice(&[3, b'a', b'b', b'c', 0xff, 0xff]);
        assert_eq!(parse_response(&p), Err(WireError::BadPointer));
        // Reserved label types.
        let mut p = header(1, 0x8180, 1, 0, 0);
        p.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
        assert_eq!(parse_response(&p), Err(WireError::BadLabel));
        // A name of more than 255 octets, built from questions whose names
        // each end in a pointer to the one before.
        let mut p = header(1, 0x8180, 5, 0, 0);
        let mut previous = p.len();
        p.push(63);
        p.extend_from_slice(&[b'x'; 63]);
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        for _ in 0..4 {
            let here = p.len();
            p.push(63);
            p.extend_from_slice(&[b'y'; 63]);
            p.extend_from_slice(&[0xc0 | (previous >> 8) as u8, previous as u8, 0, 1, 0, 1]);
            previous = here;
        }
        assert_eq!(parse_response(&p), Err(WireError::NameTooLong));
        // An A record of the wrong length, and rdata longer than the packet.
        let mut p = header(1, 0x8180, 1, 1, 0);
        p.extend(encode_name("a.test"));
        p.extend_from_slice(&[0, 1, 0, 1]);
        p.extend(record_to_question(TYPE_A, 5, &[1, 2, 3]));
        assert_eq!(parse_response(&p), Err(WireError::BadRecord));
        let mut p = header(1, 0x8180, 1, 1, 0);
        p.extend(encode_name("a.test"));
        p.extend_from_slice(&[
            0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 200, 1, 2, 3, 4,
        ]);
        assert_eq!(parse_response(&p), Err(WireError::Truncated));
        // An MX whose name runs past its rdlength.
        let mut p = header(1, 0x8180, 1, 1, 0);
        p.extend(encode_name("a.test"));
        p.extend_from_slice(&[0, 15, 0, 1]);
        let mut r = record_to_question(TYPE_MX, 5, &[0, 1, 2, b'm', b'x', 0]);
        let len_at = r.len() - 8;
        r[len_at] = 0;
        r[len_at + 1] = 4;
        p.extend(r);
        assert_eq!(parse_response(&p), Err(WireError::BadRecord));
        // Huge counts with no records behind them.
        let p = header(1, 0x8180, 0, 0xffff, 0xffff);
        assert_eq!(parse_response(&p), Err(WireError::Truncated));
    }

    #[test]
    fn odd_octets_in_names_are_escaped() {
        let mut p = header(1, 0x8180, 1, 0, 0);
        p.extend_from_slice(&[3, b'a', b'.', 0, 0, 0, 1, 0, 1]);
        let r = parse_response(&p).unwrap();
        assert_eq!(r.question.unwrap().name, "a\\046\\000");
    }

    #[test]
    fn every_byte_flip_is_handled() {
        let good = mx_response();
        for i in 0..good.len() {
            for value in [0u8, 1, 0x3f, 0x40, 0xc0, 0xff] {
                let mut bad = good.clone();
                bad[i] = value;
                let _ = parse_response(&bad);
            }
        }
    }
}
