//! Nesting: with the user's own spans and logs, across `.await`, in `#[async_trait]` methods.

use super::*;

#[test]
fn spans_nest_with_the_users_own_spans_and_logs() {
    let capture = capture();
    tracing::info_span!("user.parent").in_scope(with_user_spans);
    let spans = capture.spans();
    spans.assert_child_of("with_user_spans", "user.parent");
    spans.assert_child_of("user.child", "with_user_spans");
    let traced = spans.get("with_user_spans");
    assert_eq!(traced.events.events.len(), 1);
    assert_eq!(traced.events.events[0].name, "computing");
}

#[tokio::test]
async fn async_spans_stay_current_across_await() {
    let capture = capture();
    let user = tracing::info_span!("user.request");
    let answer = {
        use tracing::Instrument as _;
        outer_async().instrument(user).await
    };
    assert_eq!(answer, 42);
    let spans = capture.spans();
    spans.assert_child_of("outer_async", "user.request");
    spans.assert_child_of("inner_async", "outer_async");
    spans.assert_child_of("user.after_await", "outer_async");
}

#[tokio::test]
async fn async_trait_methods_are_traced_across_await() {
    let capture = capture();
    let ledger: &dyn Ledger = &MemoryLedger;
    assert_eq!(ledger.post(5).await, Ok(5));
    assert!(ledger.post(-1).await.is_err());
    let spans = capture.spans();
    let posts = spans.all("MemoryLedger.post");
    assert_eq!(posts.len(), 2, "{}", spans.tree());
    let ok = posts.iter().find(|s| s.status == Status::Unset).unwrap();
    assert_eq!(attribute(ok, "cents"), Some(&Value::I64(5)));
    let failed = posts.iter().find(|s| s.status != Status::Unset).unwrap();
    assert_eq!(failed.status, Status::error("order ledger has no items"));
    assert_eq!(events(failed, "exception").len(), 1);
    for write in spans.all("ledger.write") {
        assert!(
            posts
                .iter()
                .any(|p| write.parent_span_id == p.span_context.span_id())
        );
    }
}
