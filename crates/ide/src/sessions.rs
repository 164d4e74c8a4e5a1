//! The sessions started for launch configurations: starting one (agent, intproxy, the
//! debuggee's environment), holding it until the debuggee connects, noticing when its agent or
//! intproxy goes away, and ending it.
//!
//! The intproxy exits once no layer has been connected for `idle_timeout`. A debugger may take
//! a while to start the debuggee (Delve builds the program first), so the sidecar holds a layer
//! connection of its own, the *anchor*, for `internal_proxy.start_idle_timeout` seconds after the
//! session starts; after that the session lives as long as the debuggee (and its children) stay
//! connected, or until `mirrord/endSession`. The anchor also hears the intproxy's `AgentLost`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirrord_config::ResolvedConfig;
use mirrord_session::{Session, SessionError};
use tokio::sync::mpsc;

use crate::protocol::{SessionEventKind, SessionEventParams};

/// A started session and what the debuggee needs.
#[derive(Debug)]
pub struct Started {
    /// The id clients use.
    pub session_id: String,
    /// The environment the debuggee must run with (see `mirrord_session::user_environment`).
    pub environment: BTreeMap<String, String>,
    /// What the user should know about the session (`mirrord_session::Session::notices`).
    pub notices: Vec<String>,
}

struct Entry {
    session: Session,
    anchor: Option<TcpStream>,
    agent_lost_reported: Arc<AtomicBool>,
}

/// Every running session of this sidecar.
#[derive(Clone)]
pub struct Sessions {
    running: Arc<Mutex<HashMap<String, Entry>>>,
    /// Set once the sidecar is exiting: sessions that finish starting after that are ended.
    closed: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
    event_tx: mpsc::UnboundedSender<SessionEventParams>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Sessions")
            .field("running", &self.lock().keys().cloned().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether the request that started a session is still waiting for it; shared with the thread
/// that starts it, so that a cancelled request's session is ended instead of leaked.
#[derive(Debug, Default)]
pub struct StartTicket {
    cancelled: AtomicBool,
    session_id: Mutex<Option<String>>,
}

impl StartTicket {
    /// Marks the request as gone.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

impl Sessions {
    /// No sessions yet; events go to `event_tx`.
    pub fn new(event_tx: mpsc::UnboundedSender<SessionEventParams>) -> Sessions {
        Sessions {
            running: Arc::default(),
            closed: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            event_tx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for `config` (blocking: run it on a blocking thread). `local_env` is the
    /// environment the debuggee would have without mirrord.
    pub fn start(
        &self,
        config: &ResolvedConfig,
        local_env: &BTreeMap<String, String>,
        layer_path: &std::path::Path,
        ticket: &StartTicket,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Started, SessionError> {
        let mut session = mirrord_session::start(config, progress)?;
        let session_id = format!("ide-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let outcome = (|| {
            // Hold the intproxy open before anything else connects and leaves.
            let anchor = connect_anchor(&session)?;
            progress("reading the target's environment");
            let remote = if config.feature.env.enabled {
                mirrord_session::fetch_env(&session, mirrord_session::env_request(config))?
            } else {
                Vec::new()
            };
            let local: Vec<(OsString, OsString)> = local_env
                .iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect();
            let environment =
                mirrord_session::user_environment(local, &remote, config, &session, layer_path)?
                    .into_iter()
                    .map(|(name, value)| {
                        (
                            name.to_string_lossy().into_owned(),
                            value.to_string_lossy().into_owned(),
                        )
                    })
                    .collect();
            Ok::<_, SessionError>((anchor, environment))
        })();
        let (anchor, environment) = match outcome {
            Ok(started) => started,
            Err(error) => {
                session.end();
                return Err(error);
            }
        };
        let mut running = self.lock();
        if ticket.cancelled.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
            drop(running);
            let _ = anchor.shutdown(Shutdown::Both);
            session.end();
            return Err(SessionError::Environment(
                "the request was cancelled".to_owned(),
            ));
        }
        let notices = session.notices.clone();
        let agent_lost_reported = Arc::new(AtomicBool::new(false));
        self.watch_anchor(&session_id, &anchor, &agent_lost_reported);
        let hold = Duration::from_secs(config.internal_proxy.start_idle_timeout.max(1));
        if let Ok(release) = anchor.try_clone() {
            std::thread::spawn(move || {
                std::thread::sleep(hold);
                let _ = release.shutdown(Shutdown::Both);
            });
        }
        running.insert(
            session_id.clone(),
            Entry {
                session,
                anchor: Some(anchor),
                agent_lost_reported,
            },
        );
        *ticket
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(session_id.clone());
        Ok(Started {
            session_id,
            environment,
            notices,
        })
    }

    fn watch_anchor(&self, session_id: &str, anchor: &TcpStream, reported: &Arc<AtomicBool>) {
        let Ok(mut reader) = anchor.try_clone() else {
            return;
        };
        let _ = reader.set_read_timeout(None);
        let event_tx = self.event_tx.clone();
        let session_id = session_id.to_owned();
        let reported = Arc::clone(reported);
        std::thread::spawn(move || {
            if let Some(message) = mirrord_session::wait_for_agent_lost(&mut reader)
                && !reported.swap(true, Ordering::SeqCst)
            {
                let _ = event_tx.send(SessionEventParams {
                    session_id: session_id.clone(),
                    kind: SessionEventKind::AgentLost,
                    message: format!("the agent is gone: {message}"),
                });
            }
        });
    }

    /// Ends a session; `false` when it is not running (any more).
    pub fn end(&self, session_id: &str, why: &str) -> bool {
        let entry = self.lock().remove(session_id);
        let Some(mut entry) = entry else {
            return false;
        };
        finish(&mut entry);
        let _ = self.event_tx.send(SessionEventParams {
            session_id: session_id.to_owned(),
            kind: SessionEventKind::Ended,
            message: why.to_owned(),
        });
        true
    }

    /// Ends every session (the sidecar is exiting).
    pub fn end_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            self.end(&id, "the mirrord sidecar is exiting");
        }
    }

    /// Ends the session a cancelled request started, if it got that far.
    pub fn abandon(&self, ticket: &StartTicket) {
        ticket.cancel();
        let started = ticket
            .session_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(session_id) = started {
            self.end(&session_id, "the request that started it was cancelled");
        }
    }

    /// Reaps helpers that exited and reports what changed: an agent that died while its
    /// intproxy runs is `agentLost`; an intproxy that exited ends the session.
    pub fn poll(&self) {
        let mut ended = Vec::new();
        let mut lost = Vec::new();
        {
            let mut running = self.lock();
            for (id, entry) in running.iter_mut() {
                let status = entry.session.poll();
                if !status.intproxy_running {
                    ended.push(id.clone());
                } else if !status.agent_running
                    && !entry.agent_lost_reported.swap(true, Ordering::SeqCst)
                {
                    lost.push(id.clone());
                }
            }
        }
        for id in lost {
            let _ = self.event_tx.send(SessionEventParams {
                session_id: id,
                kind: SessionEventKind::AgentLost,
                message: "the agent exited; the debuggee's remote calls fail from now on"
                    .to_owned(),
            });
        }
        for id in ended {
            self.end(&id, "no process uses the session any more");
        }
    }

    /// How many sessions run.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The intproxy log of a session, for error messages.
    pub fn logs(&self, session_id: &str) -> Option<(PathBuf, PathBuf)> {
        self.lock().get(session_id).map(|entry| {
            (
                entry.session.agent_log.clone(),
                entry.session.intproxy_log.clone(),
            )
        })
    }
}

fn finish(entry: &mut Entry) {
    if let Some(anchor) = entry.anchor.take() {
        let _ = anchor.shutdown(Shutdown::Both);
    }
    entry.session.end();
}

/// The anchor: a layer connection of the sidecar's own that holds the intproxy open.
fn connect_anchor(session: &Session) -> Result<TcpStream, SessionError> {
    session
        .connect_as_layer(Duration::from_secs(10))
        .map_err(|error| {
            SessionError::Environment(format!("cannot hold the session open: {error}"))
        })
}
