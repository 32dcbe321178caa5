use eventsource_runtime::prelude::*;

pub struct Open {
    pub id: String,
}

#[command_handler]
impl Clone for Open {
    fn clone(&self) -> Self {
        Open {
            id: self.id.clone(),
        }
    }
}

fn main() {}
