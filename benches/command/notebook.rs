//! W2's aggregate: one notebook, one note per command.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteAdded {
    pub text: String,
}

#[derive(Debug, Default, Aggregate)]
#[aggregate(type = "Notebook", events(NoteAdded))]
pub struct Notebook {
    notes: usize,
}

impl Apply<NoteAdded> for Notebook {
    fn apply(&mut self, _: &NoteAdded) {
        self.notes += 1;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a note cannot be empty")]
pub struct EmptyNote;

pub struct AddNote {
    pub notebook_id: String,
    pub text: String,
}

impl Command for AddNote {
    const TYPE: &'static str = "AddNote";
    fn aggregate_id(&self) -> String {
        self.notebook_id.clone()
    }
}

impl Handle<AddNote> for Notebook {
    type Error = EmptyNote;
    fn handle(&self, cmd: AddNote) -> Result<Vec<NotebookEvent>, EmptyNote> {
        if cmd.text.is_empty() {
            return Err(EmptyNote);
        }
        Ok(vec![NoteAdded { text: cmd.text }.into()])
    }
}

pub(super) fn note(n: u64) -> AddNote {
    AddNote {
        notebook_id: "hot".into(),
        text: format!("note {n}"),
    }
}
