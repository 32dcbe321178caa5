use eventsource_runtime::prelude::*;
use eventsource_test_support::ui::account::{Account, AccountEvent, Opened, Refused};

pub struct Open {
    pub id: String,
}

#[command_handler(command_type = "OpenAccount")]
impl Handle<Open> for Account {
    type Error = Refused;
    fn handle(&self, cmd: Open) -> Result<Vec<AccountEvent>, Refused> {
        Ok(vec![Opened { id: cmd.id }.into()])
    }
}

fn main() {}
