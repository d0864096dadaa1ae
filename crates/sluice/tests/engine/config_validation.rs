//! A configuration that cannot work stops `Sluice::open` with an error naming the field
//! (`keyspace[i] "name".field`) and saying what is wrong.

use sluice::config::Config;
use sluice::{ConfigError, Durability, KeyspaceConfig, OpenError, Policy, Sluice};

use crate::common::*;

struct Refusal {
    field: String,
    message: String,
    display: String,
}

async fn open(
    setup_sql: &str,
    keyspaces: Vec<KeyspaceConfig>,
    tweak: impl FnOnce(&mut Config),
) -> Result<Sluice, OpenError> {
    let dir = tempfile::tempdir().unwrap();
    if !setup_sql.is_empty() {
        exec_sql(dir.path(), setup_sql);
    }
    let mut cfg = config(dir.path(), keyspaces);
    tweak(&mut cfg);
    let result = Sluice::open(cfg).await;
    if let Ok(s) = &result {
        s.shutdown().await;
    }
    result
}

async fn refusal(setup_sql: &str, keyspaces: Vec<KeyspaceConfig>) -> Refusal {
    refusal_with(setup_sql, keyspaces, |_| {}).await
}

async fn refusal_with(
    setup_sql: &str,
    keyspaces: Vec<KeyspaceConfig>,
    tweak: impl FnOnce(&mut Config),
) -> Refusal {
    let err = match open(setup_sql, keyspaces, tweak).await {
        Ok(_) => panic!("the config was accepted"),
        Err(e) => e,
    };
    let display = err.to_string();
    match err {
        OpenError::Config(ConfigError::Invalid { field, message }) => {
            assert_eq!(display, format!("invalid config: {field}: {message}"));
            Refusal {
                field,
                message,
                display,
            }
        }
        other => panic!("expected a field-level config error, got {other:?}"),
    }
}

fn assert_mentions(r: &Refusal, field: &str, words: &[&str]) {
    assert_eq!(r.field, field, "{}", r.display);
    assert!(r.display.contains(field), "{}", r.display);
    for w in words {
        assert!(
            r.message.contains(w),
            "message should mention {w:?}: {}",
            r.display
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_refused_naming_keyspace_table() {
    let r = refusal("", vec![price_keyspace(Policy::WriteThrough)]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".table"#,
        &[r#"table "products" does not exist"#],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_keyspace_without_a_table_is_refused() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.table = None;
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(&r, r#"keyspace[0] "price".table"#, &["is missing"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_value_column_is_refused_naming_the_column() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.value_column = Some("cost".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".value_column"#,
        &[r#"has no column "cost""#],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_column_is_refused_naming_the_column() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.key_column = Some("sku".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".key_column"#,
        &[r#"has no column "sku""#],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_column_that_is_not_unique_is_refused() {
    let ks = mapped(
        "by_name",
        "product:{name}:price",
        "products",
        "name",
        "price",
        Policy::WriteThrough,
    );
    let r = refusal(PRODUCTS, vec![ks.clone()]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "by_name".key_column"#,
        &["products.name", "not unique"],
    );

    // A unique index on the column is enough.
    let schema = format!("{PRODUCTS}; CREATE UNIQUE INDEX products_name ON products (name);");
    assert!(open(&schema, vec![ks], |_| {}).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keyspace_names_are_refused() {
    let r = refusal(
        PRODUCTS,
        vec![price_keyspace(Policy::WriteThrough), {
            let mut ks = stock_keyspace(Policy::WriteBack);
            ks.name = "price".into();
            ks
        }],
    )
    .await;
    assert_mentions(&r, r#"keyspace[1] "price".name"#, &["unique"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_needs_exactly_one_capture() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.keys = "product:price".into();
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".keys"#,
        &["0 captures", "exactly one"],
    );

    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.keys = "product:{id}:{field}".into();
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".keys"#,
        &["2 captures", "exactly one"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_that_are_not_plain_sql_are_refused() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.table = Some("x; drop".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".table"#,
        &[r#""x; drop" is not a plain SQL identifier"#],
    );

    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.value_column = Some("price\" --".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(
        &r,
        r#"keyspace[0] "price".value_column"#,
        &["not a plain SQL identifier"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_write_back_keyspace_needs_a_durable_journal() {
    let mut ks = price_keyspace(Policy::WriteBack);
    ks.critical = true;
    let r = refusal(PRODUCTS, vec![ks.clone()]).await;
    assert_mentions(
        &r,
        r#"keyspace "price".critical"#,
        &["durable journal", "durability"],
    );

    // With a durable journal the same keyspace opens.
    let opened = open(PRODUCTS, vec![ks], |c| {
        c.journal.durability = Durability::Os
    })
    .await;
    assert!(opened.is_ok(), "{:?}", opened.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_unusable_keyspace_settings_are_refused_by_field() {
    // The value column is the key column.
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.value_column = Some("ID".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(&r, r#"keyspace[0] "price".value_column"#, &["key column"]);

    // The built-in keyspace takes no table.
    let mut ks = builtin(Policy::WriteThrough);
    ks.table = Some("products".into());
    let r = refusal(PRODUCTS, vec![ks]).await;
    assert_mentions(&r, r#"keyspace[0] "default".table"#, &["sluice_kv"]);

    // The built-in keyspace is configured once.
    let mut second = builtin(Policy::WriteBack);
    second.name = "again".into();
    let r = refusal("", vec![builtin(Policy::WriteThrough), second]).await;
    assert_mentions(&r, r#"keyspace[1] "again".keys"#, &["once"]);

    // Zero knobs.
    let mut ks = builtin(Policy::WriteBack);
    ks.max_dirty = 0;
    let r = refusal("", vec![ks]).await;
    assert_mentions(&r, r#"keyspace[0] "default".max_dirty"#, &["at least 1"]);
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_batch = 0;
    let r = refusal("", vec![ks]).await;
    assert_mentions(&r, r#"keyspace[0] "default".flush_batch"#, &["at least 1"]);

    // The error names the offending entry, not the first one.
    let mut bad = stock_keyspace(Policy::WriteThrough);
    bad.value_column = Some("qty".into());
    let r = refusal(PRODUCTS, vec![price_keyspace(Policy::WriteThrough), bad]).await;
    assert_mentions(&r, r#"keyspace[1] "stock".value_column"#, &[r#""qty""#]);
}

/// Two keyspaces on one column would each cache a copy that writes through the other leave
/// stale (and WATCH on one would miss writes through the other): every column is mapped once,
/// whether as a string keyspace's value column or as a field of a hash keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_mapped_by_two_keyspaces_is_refused() {
    let other_price = mapped(
        "cost",
        "product:{id}:cost",
        "products",
        "id",
        "price",
        Policy::WriteThrough,
    );
    let r = refusal(
        PRODUCTS,
        vec![price_keyspace(Policy::WriteThrough), other_price],
    )
    .await;
    assert_eq!(r.field, "keyspace[1] \"cost\".value_column");
    assert!(
        r.message.contains("products.price") && r.message.contains("\"price\""),
        "{}",
        r.message
    );

    let mut rows = KeyspaceConfig::builtin(Policy::WriteThrough);
    rows.name = "product".into();
    rows.keys = "product:{id}".into();
    rows.table = Some("products".into());
    rows.key_column = Some("id".into());
    rows.columns = Some(vec!["stock".into(), "name".into()]);
    let r = refusal(
        PRODUCTS,
        vec![stock_keyspace(Policy::WriteThrough), rows.clone()],
    )
    .await;
    assert_eq!(r.field, "keyspace[1] \"product\".columns");
    assert!(r.message.contains("products.stock"), "{}", r.message);

    // Disjoint columns of one table are fine.
    rows.columns = Some(vec!["name".into()]);
    let opened = open(
        PRODUCTS,
        vec![
            price_keyspace(Policy::WriteThrough),
            stock_keyspace(Policy::WriteThrough),
            rows,
        ],
        |_| {},
    )
    .await;
    assert!(opened.is_ok(), "{:?}", opened.err());
}
