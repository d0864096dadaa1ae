//! `get_now`, `set_now` and `incr_by_now` finish at once when nothing needs a wait, and
//! otherwise hand back the rest of the operation, whose outcome is the one the waiting form
//! (`get`, `set`, `incr_by`) gives.

use sluice::{Policy, SetOptions, SetOutcome};

use crate::common::*;

#[tokio::test]
async fn buffered_and_cached_keys_are_answered_at_once() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.set("k", "41").await;

    let set = h
        .sluice
        .access()
        .set_now(0, b("k"), b("41"), SetOptions::default());
    assert!(
        matches!(
            set,
            Ok(Ok(SetOutcome {
                written: true,
                old: None
            }))
        ),
        "SET with room in the buffer needs no wait"
    );
    let incr = h.sluice.access().incr_by_now(0, b("k"), 1);
    assert!(matches!(incr, Ok(Ok(42))), "the key is buffered");
    let get = h.sluice.access().get_now(0, b("k"));
    assert!(
        matches!(get, Ok(Ok(Some(ref v))) if v == "42"),
        "the key is buffered"
    );
}

#[tokio::test]
async fn a_key_only_the_store_has_is_read_in_the_rest_of_the_operation() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.set("k", "41").await;
    // Reopened: the key is in the table only.
    let h = h.restart(|_| {}).await;

    let Err(rest) = h.sluice.access().incr_by_now(0, b("k"), 1) else {
        panic!("a key in neither the buffer nor the cache needs a store read");
    };
    assert_eq!(rest.await.unwrap(), 42);
    let incr = h.sluice.access().incr_by_now(0, b("k"), 1);
    assert!(matches!(incr, Ok(Ok(43))), "now buffered");
}

#[tokio::test]
async fn a_write_through_write_is_committed_in_the_rest_of_the_operation() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    let Err(rest) = h
        .sluice
        .access()
        .set_now(0, b("k"), b("v"), SetOptions::default())
    else {
        panic!("a write-through write waits for its commit");
    };
    assert!(rest.await.unwrap().written);
    assert_eq!(h.kv_row(0, "k"), Some(("v".into(), None)));
}

#[tokio::test]
async fn a_key_another_holds_is_written_once_it_is_released() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.set("k", "41").await;
    let txn = h.sluice.transaction([(0, &b"k"[..])]).await;
    let Err(rest) = h.sluice.access().incr_by_now(0, b("k"), 1) else {
        panic!("the transaction holds the key's lock");
    };
    drop(txn);
    assert_eq!(rest.await.unwrap(), 42);
    assert_eq!(h.get("k").await.as_deref(), Some("42"));
}
