//! Seed 002: TaskService and NotificationService.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub title: String,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCompleted;

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Task", events(TaskCreated, TaskCompleted))]
pub struct Task {
    pub title: String,
    pub completed: bool,
}
impl Apply<TaskCreated> for Task {
    fn apply(&mut self, e: &TaskCreated) {
        self.title.clone_from(&e.title);
        self.completed = false;
    }
}
impl Apply<TaskCompleted> for Task {
    fn apply(&mut self, _: &TaskCompleted) {
        self.completed = true;
    }
}

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// Seed 002's `TaskService(TracingMixin)`: one span per call, its own attributes, the
/// repository's spans inside, and a switch per instance.
pub struct TaskService {
    repository: Repository<Task>,
    enable_tracing: bool,
}

impl TaskService {
    pub fn new(repository: Repository<Task>, enable_tracing: bool) -> Self {
        Self {
            repository,
            enable_tracing,
        }
    }

    #[traced(
        name = "task_service.create_task",
        fields(task.title = title),
        enabled = self.enable_tracing,
    )]
    pub async fn create_task(&self, title: &str) -> Result<AggregateRoot<Task>, RepositoryError> {
        let task_id = format!("task-{}", NEXT_TASK.fetch_add(1, Ordering::Relaxed));
        telemetry::set_attribute(attr::AGGREGATE_ID, task_id.clone());
        telemetry::set_attribute(attr::AGGREGATE_TYPE, Task::TYPE);
        let mut task = AggregateRoot::<Task>::new(task_id);
        task.record(TaskCreated {
            title: title.to_owned(),
        });
        self.repository.save(&mut task).await?;
        telemetry::set_attribute(attr::EVENT_COUNT, 1_i64);
        Ok(task)
    }

    #[traced(
        name = "task_service.complete_task",
        fields({ attr::AGGREGATE_ID } = task_id),
        enabled = self.enable_tracing,
    )]
    pub async fn complete_task(
        &self,
        task_id: &str,
    ) -> Result<AggregateRoot<Task>, RepositoryError> {
        let mut task = self.repository.load(task_id).await?;
        task.record(TaskCompleted);
        self.repository.save(&mut task).await?;
        Ok(task)
    }

    #[traced(
        name = "task_service.get_task",
        fields({ attr::AGGREGATE_ID } = task_id),
        enabled = self.enable_tracing,
    )]
    pub async fn get_task(&self, task_id: &str) -> Result<AggregateRoot<Task>, RepositoryError> {
        self.repository.load(task_id).await
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot send to `{0}`")]
pub struct Undeliverable(String);

/// Seed 002's `NotificationService`: `@traced(name, attributes={"channel": ...})`. Like the
/// seed's `TracingMixin`, the instance's switch applies to every traced method.
pub struct NotificationService {
    enable_tracing: bool,
    sent: Mutex<Vec<String>>,
}

impl NotificationService {
    pub fn new(enable_tracing: bool) -> Self {
        Self {
            enable_tracing,
            sent: Mutex::new(Vec::new()),
        }
    }

    #[traced(
        name = "notification_service.send_email",
        attributes("channel" = "email"),
        enabled = self.enable_tracing,
    )]
    pub async fn send_email(&self, recipient: &str, message: &str) -> Result<(), Undeliverable> {
        tokio::task::yield_now().await;
        if !recipient.contains('@') {
            return Err(Undeliverable(recipient.to_owned()));
        }
        self.sent
            .lock()
            .unwrap()
            .push(format!("email {recipient}: {message}"));
        Ok(())
    }

    #[traced(
        name = "notification_service.send_sms",
        attributes("channel" = "sms"),
        enabled = self.enable_tracing,
    )]
    pub async fn send_sms(&self, phone: &str, message: &str) -> Result<(), Undeliverable> {
        tokio::task::yield_now().await;
        if !phone.starts_with('+') {
            return Err(Undeliverable(phone.to_owned()));
        }
        self.sent
            .lock()
            .unwrap()
            .push(format!("sms {phone}: {message}"));
        Ok(())
    }
}

#[tokio::test]
async fn seed_002_task_service_spans_wrap_the_repository_and_store_spans() {
    let capture = capture();
    let service = TaskService::new(Repository::new(InMemoryEventStore::new()), true);

    // create_task: the service span, then save -> append under it.
    let task = service.create_task("Build observability").await.unwrap();
    let task_id = task.id().to_owned();
    let spans = capture.spans();
    let create = spans.get("task_service.create_task");
    assert!(spans.is_root(create), "{}", spans.tree());
    assert_eq!(kind(create), SpanKind::Internal);
    assert_eq!(create.status, Status::Unset);
    assert_eq!(
        attribute(create, "task.title"),
        Some(&string("Build observability"))
    );
    assert_eq!(
        attribute(create, attr::AGGREGATE_ID),
        Some(&string(&task_id))
    );
    assert_eq!(
        attribute(create, attr::AGGREGATE_TYPE),
        Some(&string("Task"))
    );
    assert_eq!(attribute(create, attr::EVENT_COUNT), Some(&Value::I64(1)));
    assert_eq!(
        keys(&spans, "task_service.create_task"),
        [
            attr::AGGREGATE_ID,
            attr::AGGREGATE_TYPE,
            attr::EVENT_COUNT,
            "task.title"
        ],
        "the title argument only because it is named in `fields`"
    );
    assert_eq!(
        child_names(&spans, "task_service.create_task"),
        ["eventsource.repository.save"]
    );
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );
    let save = spans.get("eventsource.repository.save");
    assert_eq!(attribute(save, attr::AGGREGATE_ID), Some(&string(&task_id)));
    assert_eq!(
        attribute(save, attr::EXPECTED_VERSION),
        Some(&Value::I64(0))
    );
    assert_eq!(spans.len(), 3, "{}", spans.tree());

    // complete_task: load -> store load, then save -> append, all under the service span.
    capture.clear();
    let task = service.complete_task(&task_id).await.unwrap();
    assert!(task.state().completed);
    let spans = capture.spans();
    let complete = spans.get("task_service.complete_task");
    assert!(spans.is_root(complete));
    assert_eq!(
        attribute(complete, attr::AGGREGATE_ID),
        Some(&string(&task_id))
    );
    assert_eq!(
        child_names(&spans, "task_service.complete_task"),
        ["eventsource.repository.load", "eventsource.repository.save"]
    );
    spans.assert_child_of(
        "eventsource.event_store.load",
        "eventsource.repository.load",
    );
    spans.assert_child_of(
        "eventsource.event_store.append",
        "eventsource.repository.save",
    );
    let load = spans.get("eventsource.repository.load");
    assert_eq!(attribute(load, attr::EVENTS_REPLAYED), Some(&Value::I64(1)));
    let append = spans.get("eventsource.event_store.append");
    let persisted = events(append, attr::SPAN_EVENT_EVENT_PERSISTED);
    assert_eq!(persisted.len(), 1);
    assert_eq!(
        event_value(persisted[0], attr::EVENT_TYPE),
        Some(&string("TaskCompleted"))
    );
    assert_eq!(
        event_value(persisted[0], attr::EVENT_SEQUENCE),
        Some(&Value::I64(2))
    );
    assert_eq!(spans.len(), 5, "{}", spans.tree());

    // get_task: the load only.
    capture.clear();
    let task = service.get_task(&task_id).await.unwrap();
    assert_eq!(task.state().title, "Build observability");
    let spans = capture.spans();
    assert_eq!(
        child_names(&spans, "task_service.get_task"),
        ["eventsource.repository.load"]
    );
    assert_eq!(spans.len(), 3, "{}", spans.tree());
}

#[tokio::test]
async fn seed_002_a_service_with_tracing_off_leaves_only_the_repository_spans() {
    let capture = capture();
    let service = TaskService::new(Repository::new(InMemoryEventStore::new()), false);
    let task_id = async {
        let task = service.create_task("Untraced").await.unwrap();
        service.complete_task(task.id()).await.unwrap();
        task.id().to_owned()
    }
    .instrument(tracing::info_span!("caller"))
    .await;

    let spans = capture.spans();
    assert!(
        spans
            .names()
            .iter()
            .all(|n| !n.starts_with("task_service.")),
        "{}",
        spans.tree()
    );
    // The repository's spans hang under the caller instead.
    let caller = spans.get("caller");
    assert_eq!(
        child_names(&spans, "caller"),
        [
            "eventsource.repository.save",
            "eventsource.repository.load",
            "eventsource.repository.save",
        ],
        "{}",
        spans.tree()
    );
    for save in spans.all("eventsource.repository.save") {
        assert_eq!(attribute(save, attr::AGGREGATE_ID), Some(&string(&task_id)));
        assert_eq!(spans.children(save).len(), 1, "the append");
    }
    // The switched-off service's own attributes went nowhere: not onto the caller's span.
    assert_eq!(
        keys(&spans, "caller"),
        Vec::<String>::new(),
        "{:?}",
        caller.attributes
    );
    assert_eq!(spans.len(), 7, "{}", spans.tree());
}

#[tokio::test]
async fn seed_002_notification_service_static_attributes() {
    let capture = capture();
    let notifications = NotificationService::new(true);
    notifications
        .send_email("ada@example.com", "order shipped")
        .await
        .unwrap();
    notifications
        .send_sms("+15550100", "order shipped")
        .await
        .unwrap();
    let spans = capture.spans();
    assert_eq!(
        spans.names(),
        [
            "notification_service.send_email",
            "notification_service.send_sms"
        ]
    );
    for (name, channel) in [
        ("notification_service.send_email", "email"),
        ("notification_service.send_sms", "sms"),
    ] {
        let span = spans.get(name);
        assert!(spans.is_root(span));
        assert_eq!(kind(span), SpanKind::Internal);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(attribute(span, "channel"), Some(&string(channel)));
        // Arguments (recipient, message) are never recorded unless named.
        assert_eq!(keys(&spans, name), ["channel"], "{name}");
        assert!(span.events.events.is_empty());
    }

    // A failed send: ERROR, the error's Display, one exception event.
    capture.clear();
    let failed = notifications.send_sms("5550100", "order shipped").await;
    assert_eq!(failed, Err(Undeliverable("5550100".into())));
    let spans = capture.spans();
    let sms = spans.get("notification_service.send_sms");
    assert_eq!(sms.status, Status::error("cannot send to `5550100`"));
    let exceptions = events(sms, attr::SPAN_EVENT_EXCEPTION);
    assert_eq!(exceptions.len(), 1);
    assert_eq!(
        event_value(exceptions[0], attr::EXCEPTION_MESSAGE),
        Some(&string("cannot send to `5550100`"))
    );
    assert!(
        matches!(event_value(exceptions[0], attr::EXCEPTION_TYPE), Some(v) if v.as_str().ends_with("Undeliverable")),
        "{:?}",
        exceptions[0]
    );
    assert_eq!(sms.events.events.len(), 1);

    // The same service with its switch off: the messages go out, no span.
    capture.clear();
    let quiet = NotificationService::new(false);
    quiet.send_email("ada@example.com", "hi").await.unwrap();
    quiet.send_sms("+15550100", "hi").await.unwrap();
    assert_eq!(quiet.sent.lock().unwrap().len(), 2);
    assert!(capture.spans().is_empty(), "{}", capture.spans().tree());
}

/// Seed 002's attribute constants have the same keys here (its `db.system` is the newer
/// semantic conventions' `db.system.name`).
#[test]
fn seed_002_attribute_constants() {
    assert_eq!(attr::AGGREGATE_ID, "eventsource.aggregate.id");
    assert_eq!(attr::AGGREGATE_TYPE, "eventsource.aggregate.type");
    assert_eq!(attr::EVENT_TYPE, "eventsource.event.type");
    assert_eq!(attr::EVENT_COUNT, "eventsource.event.count");
    assert_eq!(attr::VERSION, "eventsource.version");
    assert_eq!(attr::DB_SYSTEM_NAME, "db.system.name");
    assert_eq!(attr::MESSAGING_SYSTEM, "messaging.system");
}
