use eventsource_runtime::traced;

#[traced(attributes("channel" = channel))]
fn send(channel: &str) -> usize {
    channel.len()
}

fn main() {
    send("email");
}
