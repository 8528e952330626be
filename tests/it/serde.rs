//! The `serde` feature: interned handles serialize as their values and deserialize by interning, into the global
//! interners or (with `DeserializeSeed`) a chosen one; a value its budget refuses is an error naming the budget, never
//! a panic. Round trips go through JSON (`serde_json`); byte strings are JSON arrays of numbers.

use core::fmt;
use core::ptr;

use ::serde::de::value::{BytesDeserializer, Error as ValueError};
use ::serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use ::serde::ser::{SerializeStruct, Serializer};
use ::serde::{Deserialize, Serialize};
use leak_budget::{Interned, Interner, intern};

use crate::support::{budget, leaked};

fn interner<T: ?Sized + 'static>(limit: usize) -> &'static Interner<T>
where
    Interner<T>: Sync,
{
    leaked(Interner::in_budget(budget(limit)))
}

#[test]
fn a_string_handle_round_trips_as_a_json_string_into_the_global_interner() {
    let handle: Interned<str> = serde_json::from_str(r#""serde round trip""#).unwrap();
    // The global interner is the one `intern` uses: the same handle, the same bytes.
    let interned = intern("serde round trip").unwrap();
    assert_eq!(handle, interned);
    assert!(ptr::eq(handle.as_static(), interned.as_static()));
    assert_eq!(serde_json::to_string(&handle).unwrap(), r#""serde round trip""#);
    // Escapes are decoded before interning.
    let escaped: Interned<str> = serde_json::from_str(r#""tab\there \u00e9""#).unwrap();
    assert_eq!(escaped, "tab\there é");
    assert_eq!(serde_json::to_string(&escaped).unwrap(), r#""tab\there é""#);
}

#[test]
fn a_vector_of_handles_shares_one_handle_per_distinct_value() {
    let words: Vec<Interned<str>> = serde_json::from_str(r#"["alpha", "beta", "alpha", ""]"#).unwrap();
    assert_eq!(words.len(), 4);
    assert!(ptr::eq(words[0].as_static(), words[2].as_static()));
    assert_ne!(words[0], words[1]);
    assert_eq!(words[3], "");
    assert_eq!(serde_json::to_string(&words).unwrap(), r#"["alpha","beta","alpha",""]"#);
}

#[test]
fn a_byte_string_handle_round_trips_as_a_json_array_of_numbers() {
    let bytes: Interned<[u8]> = serde_json::from_str("[0, 1, 254, 255]").unwrap();
    assert_eq!(bytes, [0u8, 1, 254, 255][..]);
    assert_eq!(serde_json::to_string(&bytes).unwrap(), "[0,1,254,255]");
    let again: Interned<[u8]> = serde_json::from_str("[0,1,254,255]").unwrap();
    assert!(ptr::eq(bytes.as_static(), again.as_static()), "one copy in the process-wide byte interner");
    let empty: Interned<[u8]> = serde_json::from_str("[]").unwrap();
    assert!(empty.is_empty());
    // A number that is not a byte is an error, not a truncation.
    assert!(serde_json::from_str::<Interned<[u8]>>("[1, 256]").is_err());
    assert!(serde_json::from_str::<Interned<[u8]>>("[1, -1]").is_err());
}

/// A record with an interned field, with hand-written impls (the crate does not depend on serde's derive).
#[derive(Debug, PartialEq)]
struct Host {
    name: Interned<str>,
    port: u16,
}

impl Serialize for Host {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut host = serializer.serialize_struct("Host", 2)?;
        host.serialize_field("name", &self.name)?;
        host.serialize_field("port", &self.port)?;
        host.end()
    }
}

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HostVisitor;
        impl<'de> Visitor<'de> for HostVisitor {
            type Value = Host;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host with a name and a port")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Host, A::Error> {
                let (mut name, mut port) = (None, None);
                while let Some(field) = map.next_key::<String>()? {
                    match field.as_str() {
                        "name" => name = Some(map.next_value::<Interned<str>>()?),
                        "port" => port = Some(map.next_value::<u16>()?),
                        other => return Err(de::Error::unknown_field(other, &["name", "port"])),
                    }
                }
                Ok(Host {
                    name: name.ok_or_else(|| de::Error::missing_field("name"))?,
                    port: port.ok_or_else(|| de::Error::missing_field("port"))?,
                })
            }
        }
        deserializer.deserialize_struct("Host", &["name", "port"], HostVisitor)
    }
}

#[test]
fn a_struct_with_an_interned_field_round_trips() {
    let hosts: Vec<Host> =
        serde_json::from_str(r#"[{"name": "db.example", "port": 5432}, {"port": 5433, "name": "db.example"}]"#)
            .unwrap();
    assert_eq!((hosts[0].name, hosts[0].port, hosts[1].port), (intern("db.example").unwrap(), 5432, 5433));
    assert!(ptr::eq(hosts[0].name.as_static(), hosts[1].name.as_static()));
    let json = serde_json::to_string(&hosts).unwrap();
    assert_eq!(json, r#"[{"name":"db.example","port":5432},{"name":"db.example","port":5433}]"#);
    assert_eq!(serde_json::from_str::<Vec<Host>>(&json).unwrap(), hosts);
    let error = serde_json::from_str::<Host>(r#"{"name": 5, "port": 1}"#).unwrap_err();
    assert!(error.to_string().contains("expected a string"), "{error}");
}

#[test]
fn a_seed_interns_into_the_chosen_interner() {
    let names: &'static Interner<str> = interner(64 << 10);
    let unique = "only in the chosen interner";
    let mut json = serde_json::Deserializer::from_str(r#""only in the chosen interner""#);
    let name = names.deserialize(&mut json).unwrap();
    json.end().unwrap();
    assert_eq!(name, unique);
    assert_eq!(names.get(unique), Some(name));
    assert_eq!(names.len(), 1);
    assert!(names.budget().unwrap().used() >= unique.len(), "charged to the chosen interner's budget");

    // A second interner is separate: its own copy, its own handle.
    let other: &'static Interner<str> = interner(64 << 10);
    let mut json = serde_json::Deserializer::from_str(r#""only in the chosen interner""#);
    let elsewhere = other.deserialize(&mut json).unwrap();
    assert_eq!(elsewhere.as_static(), name.as_static());
    assert!(!ptr::eq(elsewhere.as_static(), name.as_static()));
    assert_ne!(elsewhere, name, "handles of different interners differ");

    // Byte strings, as numbers or as raw bytes.
    let blobs: &'static Interner<[u8]> = interner(64 << 10);
    let mut json = serde_json::Deserializer::from_str("[104, 105]");
    let blob = blobs.deserialize(&mut json).unwrap();
    assert_eq!(blob, b"hi"[..]);
    let raw = blobs.deserialize(BytesDeserializer::<ValueError>::new(b"hi")).unwrap();
    assert!(ptr::eq(raw.as_static(), blob.as_static()));
    assert_eq!(blobs.get(b"hi"), Some(blob));
}

#[test]
fn a_payload_the_budget_refuses_is_an_error_naming_the_budget() {
    let small: &'static Interner<str> = interner(4 << 10);
    let long = "x".repeat(8 << 10);
    let payload = serde_json::to_string(&long).unwrap();
    let mut json = serde_json::Deserializer::from_str(&payload);
    let error = small.deserialize(&mut json).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("the interner's budget refused the value"), "{message}");
    assert!(message.contains("leak budget `test` exceeded"), "{message}");
    assert_eq!(small.get(&long), None);
    assert!(small.is_empty());

    let blobs: &'static Interner<[u8]> = interner(4 << 10);
    let numbers = serde_json::to_string(&vec![7u8; 8 << 10]).unwrap();
    let mut json = serde_json::Deserializer::from_str(&numbers);
    let message = blobs.deserialize(&mut json).unwrap_err().to_string();
    assert!(message.contains("leak budget `test` exceeded"), "{message}");
    assert!(blobs.is_empty());

    // The interner works on for values that fit.
    let mut json = serde_json::Deserializer::from_str(r#""fits""#);
    assert_eq!(small.deserialize(&mut json).unwrap(), "fits");
}

#[test]
fn bytes_that_are_not_utf_8_are_no_string_handle() {
    let names: &'static Interner<str> = interner(64 << 10);
    let error = names.deserialize(BytesDeserializer::<ValueError>::new(b"ok \xff\xfe")).unwrap_err();
    assert!(error.to_string().contains("invalid value"), "{error}");
    assert!(names.is_empty(), "nothing interned");
    let valid = names.deserialize(BytesDeserializer::<ValueError>::new("café".as_bytes())).unwrap();
    assert_eq!(valid, "café");
    // Through JSON the format itself rejects them, and the global interner's `Deserialize` reports its error.
    assert!(serde_json::from_slice::<Interned<str>>(b"\"ok \xff\"").is_err());
    assert!(Interned::<str>::deserialize(BytesDeserializer::<ValueError>::new(b"\xc3")).is_err());
}
