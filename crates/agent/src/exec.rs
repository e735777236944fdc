//! Exec sessions: commands the server asks to run in this host's containers (`drover exec`),
//! attached, their output sent back as it comes and their input written as it arrives.
//!
//! Nothing here blocks the session with the server: the session hands input over on an
//! unbounded channel whose bytes the server keeps within [`proto::EXEC_WINDOW`] (it sends
//! more only as [`AgentMsg::ExecAck`]s come back; a session sent more is ended), and each
//! command runs on a task of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use proto::{AgentMsg, ExecStart};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// What the session passes on to a running command.
enum Input {
    Data(Vec<u8>),
    Eof,
    Resize(u16, u16),
}

struct Running {
    input: mpsc::UnboundedSender<Input>,
    /// Input bytes handed over and not yet written to the command.
    queued: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The exec sessions of one server session.
#[derive(Default)]
pub struct Execs {
    running: HashMap<u64, Running>,
}

impl Execs {
    /// Starts `start` in this cluster's container; messages go out through `tx`.
    pub fn start(&mut self, cluster: String, start: ExecStart, tx: mpsc::Sender<AgentMsg>) {
        self.running.retain(|_, r| !r.task.is_finished());
        let (input, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let req = start.req;
        let task = tokio::spawn(run(cluster, start, rx, queued.clone(), tx));
        self.running.insert(
            req,
            Running {
                input,
                queued,
                task,
            },
        );
    }

    /// Input for session `req`: `Err` with why the session was ended instead (more input
    /// than the window allows).
    pub fn input(&mut self, req: u64, data: Vec<u8>, eof: bool) -> Result<(), String> {
        let Some(r) = self.running.get(&req) else {
            return Ok(());
        };
        if !data.is_empty() {
            let before = r.queued.fetch_add(data.len(), Ordering::Relaxed);
            if before + data.len() > proto::EXEC_WINDOW {
                self.close(req);
                return Err(format!(
                    "more than {} bytes of input in flight: session ended",
                    proto::EXEC_WINDOW
                ));
            }
            let _ = r.input.send(Input::Data(data));
        }
        if eof {
            let _ = r.input.send(Input::Eof);
        }
        Ok(())
    }

    pub fn resize(&self, req: u64, cols: u16, rows: u16) {
        if let Some(r) = self.running.get(&req) {
            let _ = r.input.send(Input::Resize(cols, rows));
        }
    }

    /// Stops following session `req` (the attachment closes; with a TTY the command gets a
    /// hangup).
    pub fn close(&mut self, req: u64) {
        if let Some(r) = self.running.remove(&req) {
            r.task.abort();
        }
    }

    /// Stops every session (the server session ended).
    pub fn close_all(&mut self) {
        for (_, r) in self.running.drain() {
            r.task.abort();
        }
    }
}

async fn run(
    cluster: String,
    start: ExecStart,
    mut input: mpsc::UnboundedReceiver<Input>,
    queued: Arc<AtomicUsize>,
    tx: mpsc::Sender<AgentMsg>,
) {
    let req = start.req;
    let end = |exit_code: Option<i64>, error: Option<String>| AgentMsg::ExecEnd {
        req,
        exit_code,
        error,
    };
    let engine = match engine::Engine::connect(&cluster).await {
        Ok(e) => e,
        Err(e) => {
            let _ = tx.send(end(None, Some(e.to_string()))).await;
            return;
        }
    };
    let exec = match engine.exec(&start).await {
        Ok(x) => x,
        Err(e) => {
            let _ = tx.send(end(None, Some(e.to_string()))).await;
            return;
        }
    };
    if tx.send(AgentMsg::ExecStarted { req }).await.is_err() {
        return;
    }
    let engine::Exec {
        id,
        mut output,
        input: stdin,
    } = exec;
    let (to_writer, from_session) = mpsc::unbounded_channel();
    // Input is written apart from the output loop: a command that does not read its input
    // must not stop its output from being read.
    let writer = AbortOnDrop(tokio::spawn(write_input(
        stdin,
        from_session,
        req,
        queued,
        tx.clone(),
    )));
    let mut open = true;
    let mut error = loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok((stream, data))) => {
                    let msg = AgentMsg::ExecOutput { req, stream, data: data.to_vec() };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break None,
            },
            got = input.recv(), if open => match got {
                Some(Input::Data(d)) => { let _ = to_writer.send(Some(d)); }
                // With a TTY the engine answers the end of input by ending the output
                // too, whatever the command still writes: a terminal session ends with
                // its command instead.
                Some(Input::Eof) if start.tty => {}
                Some(Input::Eof) => { let _ = to_writer.send(None); }
                Some(Input::Resize(cols, rows)) => {
                    if let Err(e) = engine.resize_exec(&id, cols, rows).await {
                        tracing::debug!("exec resize: {e}");
                    }
                }
                None => open = false,
            },
        }
    };
    drop(writer);
    // The output ends as the command exits; the engine may take a moment to say so.
    let mut exit_code = None;
    for _ in 0..50 {
        match engine.exec_exit_code(&id).await {
            Ok(Some(code)) => {
                exit_code = Some(code);
                break;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => {
                error.get_or_insert(e.to_string());
                break;
            }
        }
    }
    if exit_code.is_none() && error.is_none() {
        error = Some("the engine did not report the command's exit code".into());
    }
    let _ = tx.send(end(exit_code, error)).await;
}

/// Writes input to the command as it comes, acknowledging each chunk written; `None`
/// closes the command's standard input.
async fn write_input(
    mut stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    mut rx: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    req: u64,
    queued: Arc<AtomicUsize>,
    tx: mpsc::Sender<AgentMsg>,
) {
    while let Some(item) = rx.recv().await {
        let Some(data) = item else {
            let _ = stdin.shutdown().await;
            return;
        };
        if stdin.write_all(&data).await.is_err() || stdin.flush().await.is_err() {
            // The command closed its input: what is sent from now on is dropped.
            return;
        }
        queued.fetch_sub(data.len(), Ordering::Relaxed);
        let ack = AgentMsg::ExecAck {
            req,
            bytes: data.len() as u64,
        };
        if tx.send(ack).await.is_err() {
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
