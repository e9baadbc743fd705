//! The snapshot decoders: any bytes read back from the store, as every persisted state type.
#![no_main]

use actors::chat::group::state::GroupSnapshot;
use actors::chat::router::book::RouterBook;
use actors::pipeline::desk::DeskSnapshot;
use actors::pipeline::repo::RepoSnapshot;
use actors::pipeline::seed::SeedSnapshot;
use actors::pipeline::task::state::TaskSnapshot;
use actors::pipeline::train::state::TrainSnapshot;
use libfuzzer_sys::fuzz_target;
use supervisors::snapshot::{Snapshot, decode};

fn one<S: Snapshot>(bytes: &[u8]) {
    if let Err(e) = decode::<S>(bytes) {
        assert!(!e.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    one::<TaskSnapshot>(data);
    one::<RepoSnapshot>(data);
    one::<TrainSnapshot>(data);
    one::<DeskSnapshot>(data);
    one::<SeedSnapshot>(data);
    one::<GroupSnapshot>(data);
    one::<RouterBook>(data);
});
