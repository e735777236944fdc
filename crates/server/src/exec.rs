//! Exec sessions (`drover exec`) relayed between an API client's WebSocket and the agent of
//! the container's host.
//!
//! Output travels like a log stream (`logs.rs`): an unguessable id bound to the host and
//! agent session it was opened on, delivered without waiting into a bounded buffer, and a
//! reader that falls behind is dropped with a message. Input is held to a window: the relay
//! sends at most [`proto::EXEC_WINDOW`] bytes the agent has not acknowledged, so neither
//! the server nor the agent buffers more than that for a client that types (or pipes) fast.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api_types::ExecEvent;
use tokio::sync::Semaphore;

use crate::logs::{Chunk, Reader, Streams};

/// What an agent reports about an exec session.
#[derive(Debug, PartialEq)]
pub enum Event {
    Started,
    Output(proto::ExecStream, Vec<u8>),
    End {
        exit_code: Option<i64>,
        error: Option<String>,
    },
}

impl Chunk for Event {
    fn size(&self) -> usize {
        match self {
            Event::Output(_, data) => data.len(),
            _ => 0,
        }
    }
}

/// The exec sessions open on this server.
#[derive(Default)]
pub struct Execs {
    pub streams: Streams<Event>,
    /// Input each session may still send, by id: taken as input goes out, given back as
    /// the agent acknowledges it.
    credit: Mutex<HashMap<u64, Arc<Semaphore>>>,
}

impl Execs {
    fn credits(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Semaphore>>> {
        self.credit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The input window of a session just opened.
    pub fn window(&self, reader: &Reader<Event>) -> Arc<Semaphore> {
        let w = Arc::new(Semaphore::new(proto::EXEC_WINDOW));
        self.credits().insert(reader.req, w.clone());
        w
    }

    /// `host`'s agent wrote `bytes` of session `req`'s input (never more credit than the
    /// window, whatever an agent claims).
    pub fn ack(&self, host: &str, req: u64, bytes: u64) {
        if !self.streams.owns(host, req) {
            return;
        }
        if let Some(w) = self.credits().get(&req) {
            let room = proto::EXEC_WINDOW.saturating_sub(w.available_permits());
            w.add_permits(usize::try_from(bytes).unwrap_or(usize::MAX).min(room));
        }
    }

    /// Forgets session `req` (its client went away or it ended).
    pub fn close(&self, req: u64) {
        self.streams.end(None, req, None);
        if let Some(w) = self.credits().remove(&req) {
            // Wakes a relay waiting for credit.
            w.close();
        }
    }
}

/// What the client is told when a session ends: the command's exit code, or the 126/127 of
/// a command that could not be run, with why.
pub fn end_event(exit_code: Option<i64>, error: Option<String>) -> ExecEvent {
    match exit_code {
        Some(code) => ExecEvent::Exit {
            code,
            message: error,
        },
        None => {
            let why = error.unwrap_or_else(|| "no reason given".into());
            let lower = why.to_ascii_lowercase();
            let not_found = lower.contains("executable file not found")
                || lower.contains("no such file or directory");
            ExecEvent::Exit {
                code: if not_found { 127 } else { 126 },
                message: Some(format!("could not run the command: {why}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_commands_or_says_why_it_did_not_run() {
        assert_eq!(
            end_event(Some(3), None),
            ExecEvent::Exit {
                code: 3,
                message: None
            }
        );
        let code = |e: &str| match end_event(None, Some(e.into())) {
            ExecEvent::Exit { code, message } => {
                assert!(message.is_some_and(|m| m.contains(e)));
                code
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(code("container web-1 is not running"), 126);
        assert_eq!(
            code(r#"exec: "nope": executable file not found in $PATH"#),
            127
        );
        assert_eq!(code("no container x on this host"), 126);
    }

    #[test]
    fn only_the_owning_host_feeds_a_session_and_its_last_word_always_arrives() {
        let x = Execs::default();
        let mut r = x.streams.open("h1", 1);
        let w = x.window(&r);
        assert_eq!(
            x.streams.deliver("h2", r.req, Event::Started),
            crate::logs::Delivery::Unknown
        );
        for _ in 0..crate::logs::BUFFER {
            x.streams.deliver(
                "h1",
                r.req,
                Event::Output(proto::ExecStream::Stdout, vec![b'x']),
            );
        }
        // The buffer is full: more output drops the session, but an end finds its place.
        x.streams.finish(
            "h1",
            r.req,
            Event::End {
                exit_code: Some(0),
                error: None,
            },
        );
        let mut last = None;
        while let Ok(e) = r.try_recv() {
            last = Some(e);
        }
        assert_eq!(
            last,
            Some(Event::End {
                exit_code: Some(0),
                error: None
            })
        );

        // Credit: taken by input, given back by acknowledgements of the owner only, never
        // above the window.
        let r = x.streams.open("h1", 1);
        let w2 = x.window(&r);
        w2.try_acquire_many(1000).expect("credit").forget();
        x.ack("h2", r.req, 1000);
        assert_eq!(w2.available_permits(), proto::EXEC_WINDOW - 1000);
        x.ack("h1", r.req, 1_000_000_000);
        assert_eq!(w2.available_permits(), proto::EXEC_WINDOW);
        x.close(r.req);
        assert!(w2.is_closed());
        drop(w);
    }
}
