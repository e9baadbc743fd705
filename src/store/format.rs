//! Byte layouts of everything the store persists. Nothing reaches the disk without a version.
//!
//! The store keeps two redb tables, both `&str → &[u8]`:
//!
//! - [`META_TABLE`] (`"meta"`) holds one entry, [`STORE_META_KEY`] (`"store"`), that marks the file
//!   as a borg store and says which store format wrote it:
//!
//!   | offset | size | field                                   |
//!   |-------:|-----:|-----------------------------------------|
//!   | 0      | 8    | magic `b"BORGSTOR"`                     |
//!   | 8      | 2    | store format version, u16 little endian |
//!
//!   The version covers the set of tables and their key layout. A build refuses a file whose
//!   version is newer than [`STORE_FORMAT_VERSION`] instead of guessing what it means.
//!
//! - [`SNAPSHOTS_TABLE`] (`"snapshots"`) maps an actor's persistence key to a [`Record`]:
//!
//!   | offset | size | field                                                |
//!   |-------:|-----:|------------------------------------------------------|
//!   | 0      | 4    | magic `b"BREC"`                                      |
//!   | 4      | 2    | record version, u16 little endian (today 1)          |
//!   | 6      | 1    | flags: bit 0 = a snapshot follows; other bits zero   |
//!   | 7      | 8    | the key's incarnation (the fence), u64 LE            |
//!   | 15     | 8    | incarnation that wrote the snapshot, u64 LE (or 0)   |
//!   | 23     | 8    | saved_at_ms, u64 LE (0 without snapshot)             |
//!   | 31     | n    | snapshot bytes (empty without snapshot)              |
//!
//!   The two incarnations differ after a claim: the fence moves on while the snapshot is still
//!   the one the previous incarnation wrote, and [`StoredSnapshot::incarnation`] reports the
//!   writer. A record without a snapshot is how a key is remembered after a claim that was never
//!   followed by a save, or after a remove: the fence must outlive the state, otherwise a zombie
//!   writer could resurrect removed state with an old incarnation.
//!
//! There is no checksum in the record: redb checksums every page (XXH3-128) and commits are
//! copy-on-write, so a torn record cannot be read back. The header still rejects bytes that are
//! too short, carry unknown flags, or hold a snapshot the flag says is absent.

use std::fmt;

use redb::TableDefinition;
use supervisors::snapshot::StoredSnapshot;

/// The table marking a file as a borg store.
pub const META_TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
/// The one key of [`META_TABLE`].
pub const STORE_META_KEY: &str = "store";
/// The table of per-key [`Record`]s.
pub const SNAPSHOTS_TABLE: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("snapshots");

/// The first bytes of the [`STORE_META_KEY`] value.
pub const STORE_MAGIC: [u8; 8] = *b"BORGSTOR";
/// The store format this build writes and reads.
pub const STORE_FORMAT_VERSION: u16 = 1;
const STORE_META_LEN: usize = STORE_MAGIC.len() + 2;

/// The first bytes of every [`Record`].
pub const RECORD_MAGIC: [u8; 4] = *b"BREC";
/// The record layout this build writes.
pub const RECORD_VERSION: u16 = 1;
/// Bytes before the snapshot in a record.
pub const RECORD_HEADER_LEN: usize = 31;
const FLAG_HAS_SNAPSHOT: u8 = 0b0000_0001;

/// The value stored under [`STORE_META_KEY`] for a store of format `version`.
pub fn encode_store_meta(version: u16) -> [u8; STORE_META_LEN] {
    let mut out = [0u8; STORE_META_LEN];
    out[..8].copy_from_slice(&STORE_MAGIC);
    out[8..].copy_from_slice(&version.to_le_bytes());
    out
}

/// The store format version in a [`STORE_META_KEY`] value, or `None` when the value is not ours.
pub fn decode_store_meta(bytes: &[u8]) -> Option<u16> {
    if bytes.len() != STORE_META_LEN || bytes[..8] != STORE_MAGIC {
        return None;
    }
    Some(u16::from_le_bytes([bytes[8], bytes[9]]))
}

/// What the store keeps per key: the fencing incarnation and, unless removed, the last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The highest incarnation that claimed or wrote the key: writes below it are stale.
    pub incarnation: u64,
    /// The last snapshot; `None` after a remove or a claim without a save.
    pub snapshot: Option<Snapshot>,
}

/// A snapshot as stored: when it was saved and its bytes (the snapshot header included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The incarnation that wrote it.
    pub incarnation: u64,
    /// Milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
    /// The snapshot bytes, opaque to the store.
    pub bytes: Vec<u8>,
}

/// Why record bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Shorter than the header or without [`RECORD_MAGIC`].
    NotARecord,
    /// Written by a newer borg; never guess at its meaning.
    NewerVersion { found: u16, supported: u16 },
    /// A version this build never wrote (0).
    UnknownVersion(u16),
    /// Flag bits this build does not know, or snapshot bytes the flags say are absent.
    Malformed(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotARecord => write!(f, "not a borg snapshot record"),
            Self::NewerVersion { found, supported } => write!(
                f,
                "record version {found} was written by a newer borg (this build supports {supported})"
            ),
            Self::UnknownVersion(v) => write!(f, "record version {v} is not known"),
            Self::Malformed(why) => write!(f, "malformed record: {why}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl Record {
    /// Serializes the record in the layout documented at the top of this module.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.snapshot.as_ref().map_or(&[][..], |s| &s.bytes[..]);
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + body.len());
        out.extend_from_slice(&RECORD_MAGIC);
        out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
        out.push(if self.snapshot.is_some() {
            FLAG_HAS_SNAPSHOT
        } else {
            0
        });
        out.extend_from_slice(&self.incarnation.to_le_bytes());
        let (written_by, saved_at) = self
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.incarnation, s.saved_at_ms));
        out.extend_from_slice(&written_by.to_le_bytes());
        out.extend_from_slice(&saved_at.to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Parses bytes made by [`Record::encode`] of this or an older record version.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let header = RecordHeader::parse(bytes)?;
        let body = &bytes[RECORD_HEADER_LEN..];
        let snapshot = if header.has_snapshot {
            Some(Snapshot {
                incarnation: header.written_by,
                saved_at_ms: header.saved_at_ms,
                bytes: body.to_vec(),
            })
        } else {
            None
        };
        Ok(Self {
            incarnation: header.incarnation,
            snapshot,
        })
    }

    /// The snapshot in the shape the [`SnapshotStore`](supervisors::snapshot::SnapshotStore)
    /// port hands out.
    pub fn into_stored(self) -> Option<StoredSnapshot> {
        self.snapshot.map(|s| StoredSnapshot {
            incarnation: s.incarnation,
            saved_at_ms: s.saved_at_ms,
            bytes: s.bytes,
        })
    }
}

/// The fixed-size part of a record, readable without copying the snapshot (for listings and for
/// the writer's fence check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The key's current incarnation.
    pub incarnation: u64,
    /// Whether a snapshot follows the header.
    pub has_snapshot: bool,
    /// The incarnation that wrote the snapshot (0 without one).
    pub written_by: u64,
    /// When the snapshot was saved (0 without one).
    pub saved_at_ms: u64,
    /// Length of the snapshot in bytes (0 without one).
    pub snapshot_len: usize,
}

impl RecordHeader {
    /// Reads and validates the header of record bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() < RECORD_HEADER_LEN || bytes[..4] != RECORD_MAGIC {
            return Err(RecordError::NotARecord);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version > RECORD_VERSION {
            return Err(RecordError::NewerVersion {
                found: version,
                supported: RECORD_VERSION,
            });
        }
        if version == 0 {
            return Err(RecordError::UnknownVersion(version));
        }
        let flags = bytes[6];
        if flags & !FLAG_HAS_SNAPSHOT != 0 {
            return Err(RecordError::Malformed(format!(
                "unknown flags {flags:#04x}"
            )));
        }
        let has_snapshot = flags & FLAG_HAS_SNAPSHOT != 0;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let snapshot_len = bytes.len() - RECORD_HEADER_LEN;
        if !has_snapshot && snapshot_len != 0 {
            return Err(RecordError::Malformed(format!(
                "{snapshot_len} snapshot bytes behind a record without snapshot"
            )));
        }
        Ok(Self {
            incarnation: u64_at(7),
            has_snapshot,
            written_by: u64_at(15),
            saved_at_ms: u64_at(23),
            snapshot_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact bytes of a version-1 record. If this test fails, the layout changed: that needs
    /// a new RECORD_VERSION and a decoder for the old one, never an edit of this fixture.
    #[test]
    fn record_v1_golden_bytes() {
        let record = Record {
            incarnation: 0x0102_0304_0506_0708,
            snapshot: Some(Snapshot {
                incarnation: 0x0102_0304_0506_0700,
                saved_at_ms: 1_700_000_000_123,
                bytes: b"BSNPxy".to_vec(),
            }),
        };
        let golden: &[u8] = &[
            b'B', b'R', b'E', b'C', // magic
            0x01, 0x00, // record version 1
            0x01, // flags: has snapshot
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // incarnation (fence)
            0x00, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // written by
            0x7b, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, // saved_at_ms
            b'B', b'S', b'N', b'P', b'x', b'y', // snapshot
        ];
        assert_eq!(record.encode(), golden);
        assert_eq!(Record::decode(golden).unwrap(), record);
        // The port reports the writer's incarnation, not the fence.
        let stored = record.into_stored().unwrap();
        assert_eq!(stored.incarnation, 0x0102_0304_0506_0700);
        assert_eq!(
            (stored.saved_at_ms, stored.bytes),
            (1_700_000_000_123, b"BSNPxy".to_vec())
        );
    }

    #[test]
    fn record_without_snapshot_golden_bytes() {
        let record = Record {
            incarnation: 3,
            snapshot: None,
        };
        let golden: &[u8] = &[
            b'B', b'R', b'E', b'C', 0x01, 0x00, 0x00, // magic, version 1, no flags
            3, 0, 0, 0, 0, 0, 0, 0, // incarnation (fence)
            0, 0, 0, 0, 0, 0, 0, 0, // written by
            0, 0, 0, 0, 0, 0, 0, 0, // saved_at_ms
        ];
        assert_eq!(record.encode(), golden);
        assert_eq!(Record::decode(golden).unwrap(), record);
        assert_eq!(record.into_stored(), None);
    }

    #[test]
    fn store_meta_golden_bytes() {
        let golden = *b"BORGSTOR\x01\x00";
        assert_eq!(encode_store_meta(1), golden);
        assert_eq!(decode_store_meta(&golden), Some(1));
        assert_eq!(decode_store_meta(&encode_store_meta(7)), Some(7));
        assert_eq!(decode_store_meta(b"BORGSTOR\x01"), None);
        assert_eq!(decode_store_meta(b"OTHERAPP\x01\x00"), None);
    }

    #[test]
    fn header_reads_without_copying_the_snapshot() {
        let record = Record {
            incarnation: 9,
            snapshot: Some(Snapshot {
                incarnation: 8,
                saved_at_ms: 42,
                bytes: vec![7; 1000],
            }),
        };
        let header = RecordHeader::parse(&record.encode()).unwrap();
        assert_eq!(
            header,
            RecordHeader {
                incarnation: 9,
                has_snapshot: true,
                written_by: 8,
                saved_at_ms: 42,
                snapshot_len: 1000,
            }
        );
    }

    #[test]
    fn bad_records_are_refused() {
        let good = Record {
            incarnation: 1,
            snapshot: None,
        }
        .encode();
        assert_eq!(Record::decode(&good[..10]), Err(RecordError::NotARecord));
        assert_eq!(Record::decode(b"nope"), Err(RecordError::NotARecord));

        let mut newer = good.clone();
        newer[4] = 2;
        assert_eq!(
            Record::decode(&newer),
            Err(RecordError::NewerVersion {
                found: 2,
                supported: 1
            })
        );

        let mut zero = good.clone();
        zero[4] = 0;
        assert_eq!(Record::decode(&zero), Err(RecordError::UnknownVersion(0)));

        let mut flags = good.clone();
        flags[6] = 0x80;
        assert!(matches!(
            Record::decode(&flags),
            Err(RecordError::Malformed(_))
        ));

        let mut trailing = good;
        trailing.push(0);
        assert!(matches!(
            Record::decode(&trailing),
            Err(RecordError::Malformed(_))
        ));
    }
}
