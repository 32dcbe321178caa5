//! In-process delivery hands the handlers the recorded events, not parsed copies.

use super::*;

/// JSON leaves `note` out: what tells a recorded event from a parsed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noted {
    pub n: u64,
    #[serde(skip)]
    pub note: Option<String>,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Pad", events(Noted))]
pub struct Pad;

impl Apply<Noted> for Pad {
    fn apply(&mut self, _: &Noted) {}
}

/// Another type under the same name: its handler gets the parsed payload.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct NotedCopy {
    pub n: u64,
    #[serde(skip)]
    pub note: Option<String>,
}

impl EventType for NotedCopy {
    const EVENT_TYPE: &'static str = "Noted";
}

#[derive(Debug, Default)]
struct Notes(Vec<Option<String>>);

#[projection]
impl Notes {
    fn noted(&mut self, event: &Noted) {
        self.0.push(event.note.clone());
    }
}

#[derive(Debug, Default)]
struct ParsedNotes(Vec<Option<String>>);

#[projection]
impl ParsedNotes {
    fn noted(&mut self, event: &NotedCopy) {
        self.0.push(event.note.clone());
    }
}

#[tokio::test]
async fn handlers_get_the_recorded_event_in_process() {
    let store = InMemoryEventStore::new();
    let pads = CommandService::<Pad>::new(store.clone());
    let notes = pads.register(Notes::default());
    let parsed = pads.register(ParsedNotes::default());
    pads.execute_with("p-1", |_| {
        Ok::<_, std::convert::Infallible>(vec![
            Noted {
                n: 1,
                note: Some("recorded".into()),
            }
            .into(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(notes.lock().await.0, [Some("recorded".to_owned())]);
    assert_eq!(parsed.lock().await.0, [None]);

    // From the store (a runner, a replay), every handler gets the parsed event.
    let mut replayed = Notes::default();
    for envelope in store.read_all(1, 10).await.unwrap() {
        replayed.handle(&envelope).await.unwrap();
    }
    assert_eq!(replayed.0, [None]);
}
