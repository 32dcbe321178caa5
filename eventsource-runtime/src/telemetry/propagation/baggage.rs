//! The W3C `baggage` header, written so that every value reads back as it was: see
//! [`W3cBaggagePropagator`].

use std::borrow::Cow;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The header's name.
const HEADER: &str = "baggage";
/// The fields it reads and writes, as `TextMapPropagator::fields` hands them out.
static FIELDS: LazyLock<[String; 1]> = LazyLock::new(|| [HEADER.to_owned()]);

/// The most a header may hold that every W3C reader must take (OpenTelemetry's drops a
/// longer header whole).
pub(crate) const MAX_HEADER_BYTES: usize = 8192;

/// What a value's encoding leaves out of `baggage-octet` (`%x21 / %x23-2B / %x2D-3A /
/// %x3C-5B / %x5D-7E`): controls, space, `"`, `,`, `;`, `\`; then `%` (the specification's
/// own rule) and `=` (OpenTelemetry's reader takes a value only up to its next `=`). Every
/// byte above 0x7E is encoded by `utf8_percent_encode` itself.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(b'=');

/// A value's set, but for `=`: inside a property, `=` parts its key from its value. (`;`,
/// which parts properties, is never in a decoded property: see [`read_properties`].)
const PROPERTY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Optional white space, as the grammar has it (`OWS = *( SP / HTAB )`).
const OWS: [char; 2] = [' ', '\t'];

/// Whether a baggage that did not fit the header was logged yet (once a process).
static LEFT_OUT_LOGGED: AtomicBool = AtomicBool::new(false);

/// The W3C `baggage` header, written and read so that values survive any number of hops
/// unchanged.
///
/// OpenTelemetry's own `BaggagePropagator` (0.33) leaves `%` and `\` unencoded and trims
/// values, so a value holding `%28` is read back as `(` on the next hop, and `a%2541` loses
/// a level of encoding at every hop. This one follows the [W3C Baggage] grammar both ways:
///
/// - writing, each value is percent-encoded where the specification requires it (every
///   byte outside `baggage-octet`, and `%`) and where OpenTelemetry's reader needs it
///   (`=`, which it splits on); keys are tokens (`Baggage` refuses any other) and are
///   written as they are; members are written in the order of their keys, so one baggage
///   always writes one text; members that would take the header past the specification's
///   8,192 bytes are left out whole (never cut), and the first time that happens in a
///   process it is logged;
/// - reading, a member's key ends at its first `=`, optional white space around keys,
///   values and properties is dropped, values and properties are percent-decoded, and a
///   decoded sequence that is not UTF-8 becomes U+FFFD, as the specification says (a
///   member is never dropped for it).
///
/// The header OpenTelemetry's reader gets from this writer is one it reads correctly, and
/// this reader takes what OpenTelemetry's writer writes.
///
/// [`propagator`](super::propagator) composes it with the trace context; what
/// `telemetry::init()` installs as the global propagator, and what the runtime writes into
/// events and messages.
///
/// [W3C Baggage]: https://www.w3.org/TR/baggage/
#[derive(Debug, Default, Clone, Copy)]
pub struct W3cBaggagePropagator {
    _private: (),
}

impl W3cBaggagePropagator {
    /// The propagator.
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl TextMapPropagator for W3cBaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = header(cx) {
            injector.set(HEADER, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(HEADER) {
            Some(header) => cx.with_baggage(members(header)),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&*FIELDS)
    }
}

/// The header for `cx`'s baggage: its members in the order of their keys, each encoded,
/// as many as fit; `None` when it has none.
fn header(cx: &Context) -> Option<String> {
    let baggage = cx.baggage();
    if baggage.is_empty() {
        return None;
    }
    let mut members: Vec<_> = baggage.iter().collect();
    members.sort_unstable_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
    let mut header = String::new();
    let mut left_out = Vec::new();
    for (key, (value, metadata)) in members {
        let member = member(key.as_str(), value.as_str(), metadata.as_str());
        let separator = usize::from(!header.is_empty());
        if header.len() + separator + member.len() > MAX_HEADER_BYTES {
            left_out.push(key.as_str());
            continue;
        }
        if separator == 1 {
            header.push(',');
        }
        header.push_str(&member);
    }
    if !left_out.is_empty() {
        log_left_out(&left_out);
    }
    (!header.is_empty()).then_some(header)
}

/// One list member: `key=value`, then `;property` for each of the metadata's properties.
fn member(key: &str, value: &str, metadata: &str) -> String {
    let mut member = String::with_capacity(key.len() + value.len() + metadata.len() + 2);
    member.push_str(key);
    member.push('=');
    member.extend(utf8_percent_encode(value, VALUE));
    if !metadata.is_empty() {
        for property in metadata.split(';') {
            member.push(';');
            member.extend(utf8_percent_encode(property, PROPERTY));
        }
    }
    member
}

fn log_left_out(keys: &[&str]) {
    if LEFT_OUT_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::debug!(
            target: crate::telemetry::TARGET,
            left_out = ?keys,
            "baggage members left out of a header: it holds at most {MAX_HEADER_BYTES} bytes"
        );
    } else {
        tracing::warn!(
            target: crate::telemetry::TARGET,
            left_out = ?keys,
            "baggage members left out of a header: it holds at most {MAX_HEADER_BYTES} bytes \
             (W3C Baggage); logged once, then at debug level"
        );
    }
}

/// The members of a header, decoded; malformed ones (no `=`) are skipped, as are keys
/// `Baggage` refuses (not a token).
fn members(header: &str) -> impl Iterator<Item = KeyValueMetadata> + '_ {
    header.split(',').filter_map(|raw| {
        let (pair, properties) = match raw.split_once(';') {
            Some((pair, properties)) => (pair, Some(properties)),
            None => (raw, None),
        };
        let (key, value) = pair.split_once('=')?;
        let key = key.trim_matches(OWS);
        if key.is_empty() {
            return None;
        }
        let value = decode(value.trim_matches(OWS));
        let metadata = properties.map(read_properties).unwrap_or_default();
        Some(KeyValueMetadata::new(key.to_owned(), value, metadata))
    })
}

/// A member's properties (what follows its first `;`), each without white space around it
/// and decoded, joined by `;` again.
fn read_properties(properties: &str) -> String {
    let mut read = String::with_capacity(properties.len());
    for (at, property) in properties.split(';').enumerate() {
        if at > 0 {
            read.push(';');
        }
        read.push_str(&decode(property.trim_matches(OWS)));
    }
    read
}

/// Percent-decoded text; sequences that are not UTF-8 read as U+FFFD.
fn decode(text: &str) -> String {
    match percent_decode_str(text).decode_utf8_lossy() {
        Cow::Borrowed(same) => same.to_owned(),
        Cow::Owned(decoded) => decoded,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use opentelemetry::baggage::Baggage;
    use opentelemetry_sdk::propagation::BaggagePropagator;

    use super::*;

    type Entries = BTreeMap<String, (String, String)>;

    fn entries(cx: &Context) -> Entries {
        cx.baggage()
            .iter()
            .map(|(key, (value, metadata))| {
                let entry = (value.as_str().to_owned(), metadata.as_str().to_owned());
                (key.as_str().to_owned(), entry)
            })
            .collect()
    }

    fn with(members: &[(&str, &str, &str)]) -> Context {
        let mut baggage = Baggage::new();
        for (key, value, metadata) in members {
            baggage.insert_with_metadata(key.to_string(), value.to_string(), *metadata);
        }
        Context::new().with_baggage(baggage)
    }

    fn written(propagator: &dyn TextMapPropagator, cx: &Context) -> HashMap<String, String> {
        let mut headers = HashMap::new();
        propagator.inject_context(cx, &mut headers);
        headers
    }

    fn read(propagator: &dyn TextMapPropagator, headers: &HashMap<String, String>) -> Context {
        propagator.extract(headers)
    }

    /// Values users put in baggage: ids, URLs, encoded text, separators, non-ASCII.
    const VALUES: [&str; 12] = [
        "%28",
        "DF%2525555",
        "100%",
        "a,b",
        "k=v;w=x",
        "base64==",
        "https://shop.example/p?id=1&q=%20x",
        " padded\t",
        "Zürich 東京 🚀",
        "quote\"back\\slash",
        "",
        "%ZZ%",
    ];

    #[test]
    fn every_value_reads_back_as_it_was_after_three_hops() {
        let ours = W3cBaggagePropagator::new();
        for value in VALUES {
            let cx = with(&[("k", value, ""), ("other", "plain", "p=1;q")]);
            let mut hop = cx.clone();
            let mut texts = Vec::new();
            for _ in 0..3 {
                let headers = written(&ours, &hop);
                texts.push(headers[HEADER].clone());
                hop = read(&ours, &headers);
                assert_eq!(
                    entries(&hop),
                    entries(&cx),
                    "{value:?} read from {headers:?}"
                );
            }
            assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");
        }
    }

    #[test]
    fn properties_read_back_as_they_were() {
        let ours = W3cBaggagePropagator::new();
        for metadata in ["p=1", "p=%41;q", "flag;x=a,b", "n=Zürich;m= spaced "] {
            let cx = with(&[("k", "v", metadata)]);
            let headers = written(&ours, &cx);
            let back = read(&ours, &headers);
            assert_eq!(entries(&back), entries(&cx), "{headers:?}");
            assert_eq!(written(&ours, &back), headers);
        }
    }

    #[test]
    fn opentelemetrys_reader_takes_what_this_one_writes() {
        let ours = W3cBaggagePropagator::new();
        let theirs = BaggagePropagator::new();
        // Their reader trims values: leave white space at the ends out of this check.
        for value in VALUES.iter().filter(|v| v.trim() == **v) {
            let cx = with(&[("k", value, "")]);
            let back = read(&theirs, &written(&ours, &cx));
            assert_eq!(entries(&back), entries(&cx), "{value:?}");
        }
    }

    #[test]
    fn this_reader_takes_what_opentelemetrys_writer_writes() {
        let ours = W3cBaggagePropagator::new();
        let theirs = BaggagePropagator::new();
        // Their writer leaves `%` bare, so only values without one survive it.
        for value in VALUES
            .iter()
            .filter(|v| !v.contains('%') && v.trim() == **v)
        {
            let cx = with(&[("k", value, "p=1")]);
            let back = read(&ours, &written(&theirs, &cx));
            assert_eq!(entries(&back), entries(&cx), "{value:?}");
        }
    }

    #[test]
    fn a_header_in_the_specifications_form_is_read() {
        let ours = W3cBaggagePropagator::new();
        let header = "userId=alice , serverNode = DF%2028 ;p1; p2 = v%2C2,isProduction=false,\
                      token=abc==,bad,=novalue,   ";
        let headers = HashMap::from([(HEADER.to_owned(), header.to_owned())]);
        let read = entries(&read(&ours, &headers));
        let expected: Entries = [
            ("isProduction", "false", ""),
            ("serverNode", "DF 28", "p1;p2 = v,2"),
            ("token", "abc==", ""),
            ("userId", "alice", ""),
        ]
        .into_iter()
        .map(|(k, v, m)| (k.to_owned(), (v.to_owned(), m.to_owned())))
        .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_the_replacement_character() {
        let ours = W3cBaggagePropagator::new();
        let headers = HashMap::from([(HEADER.to_owned(), "k=a%FFb".to_owned())]);
        let cx = read(&ours, &headers);
        assert_eq!(entries(&cx)["k"].0, "a\u{FFFD}b");
        // ...and is stable from then on.
        let again = read(&ours, &written(&ours, &cx));
        assert_eq!(entries(&again), entries(&cx));
    }

    #[test]
    fn one_baggage_writes_one_text_in_the_order_of_its_keys() {
        let ours = W3cBaggagePropagator::new();
        let cx = with(&[("b", "2", ""), ("c", "3", ""), ("a", "1", "")]);
        assert_eq!(written(&ours, &cx)[HEADER], "a=1,b=2,c=3");
        assert!(
            written(&ours, &Context::new()).is_empty(),
            "no baggage, no header"
        );
    }

    #[test]
    fn members_past_the_limit_are_left_out_whole() {
        let ours = W3cBaggagePropagator::new();
        // Each value is 1,000 bytes and is written as 3,000 (every byte encoded).
        let value = ",".repeat(1000);
        let members: Vec<(String, &str)> =
            (0..5).map(|n| (format!("k{n}"), value.as_str())).collect();
        let mut baggage = Baggage::new();
        for (key, value) in &members {
            baggage.insert(key.clone(), value.to_string());
        }
        let cx = Context::new().with_baggage(baggage);
        let header = written(&ours, &cx)[HEADER].clone();
        assert!(header.len() <= MAX_HEADER_BYTES, "{}", header.len());
        let back = entries(&read(&ours, &HashMap::from([(HEADER.to_owned(), header)])));
        assert_eq!(back.keys().collect::<Vec<_>>(), ["k0", "k1"]);
        assert!(
            back.values().all(|(v, _)| *v == value),
            "whole members only"
        );
    }
}
