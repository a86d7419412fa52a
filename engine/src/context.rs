//! The per-core context: what every task of one worker shares (never across
//! threads): configuration, serving state, counters, the `Date` cache, and
//! the pools that keep idle connections from holding memory.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use streamgate_net::response::{DateCache, ResponseHead};
use streamgate_net::send::SplicePipe;

use crate::config::EngineConfig;
use crate::deadline::Deadlines;
use crate::ingest::Ingest;
use crate::park::Parking;
use crate::serve::{Reply, Site};
use crate::shutdown::LocalDrain;
use crate::telemetry::WorkerStats;
use streamgate_net::request::Request;

/// Bytes a splice pipe asks for: one round trip moves up to this much.
const PIPE_CAPACITY: usize = 1 << 20;
/// Idle pipes kept per worker (each is two descriptors).
const MAX_IDLE_PIPES: usize = 32;
/// Size of a pooled buffer: a request head nearly always fits.
pub const BUFFER_SIZE: usize = 4096;
/// Idle buffers kept per worker; beyond that they are freed.
const MAX_IDLE_BUFFERS: usize = 256;

/// State shared by the tasks of one worker.
pub struct Worker {
    /// Engine configuration.
    pub config: Arc<EngineConfig>,
    /// Serving state and hot cache.
    pub site: Site,
    /// Counters since the last flush.
    pub stats: RefCell<WorkerStats>,
    /// The `Date` header cache.
    pub dates: RefCell<DateCache>,
    /// This worker's drain notification.
    pub drain: LocalDrain,
    /// Where `/upload` requests are answered, when uploads are enabled.
    pub ingest: Option<Arc<Ingest>>,
    /// The head being built. Filled and framed without an await in
    /// between, so one per worker serves every connection.
    pub head: RefCell<ResponseHead>,
    /// Connection cap of this worker (reloadable).
    pub max_connections: std::cell::Cell<i64>,
    /// Idle and header timeouts of this worker's connections.
    pub deadlines: Deadlines,
    /// Connections idle a while, waiting without a task.
    pub parking: Parking,
    /// Idle splice pipes, reused across responses.
    pipes: RefCell<Vec<SplicePipe>>,
    /// Idle read and head buffers: a connection holds one only while a
    /// request is in flight, so an idle keep-alive connection holds none.
    buffers: RefCell<Vec<Vec<u8>>>,
}

impl Worker {
    /// A worker's context.
    pub fn new(
        config: Arc<EngineConfig>,
        site: Site,
        ingest: Option<Arc<Ingest>>,
        max_connections: i64,
        parking: Parking,
    ) -> Self {
        Self {
            config,
            site,
            stats: RefCell::new(WorkerStats::default()),
            dates: RefCell::new(DateCache::default()),
            drain: LocalDrain::default(),
            ingest,
            head: RefCell::new(ResponseHead::default()),
            max_connections: std::cell::Cell::new(max_connections),
            deadlines: Deadlines::default(),
            parking,
            pipes: RefCell::new(Vec::new()),
            buffers: RefCell::new(Vec::new()),
        }
    }

    /// A pipe for one zero-copy file response.
    pub fn take_pipe(&self) -> io::Result<SplicePipe> {
        match self.pipes.borrow_mut().pop() {
            Some(pipe) => Ok(pipe),
            None => SplicePipe::new(PIPE_CAPACITY),
        }
    }

    /// Returns an emptied pipe to the pool.
    pub fn return_pipe(&self, pipe: SplicePipe) {
        let mut pipes = self.pipes.borrow_mut();
        if pipes.len() < MAX_IDLE_PIPES {
            pipes.push(pipe);
        }
    }

    /// Answers `request` into [`Worker::head`] (left filled in) and returns
    /// what follows it. When the file has to come from object storage
    /// first, waits for it holding no borrow — other tasks of this worker
    /// run meanwhile — then answers again. The same for every protocol.
    pub async fn answer(&self, request: &Request<'_>) -> Reply {
        let mut fetched = None;
        loop {
            let fetch = {
                let mut head = self.head.borrow_mut();
                let mut stats = self.stats.borrow_mut();
                let mut reply = match fetched.take() {
                    None => self.site.respond(request, &mut head, &mut stats),
                    Some(outcome) => self
                        .site
                        .respond_fetched(request, &mut head, &mut stats, outcome),
                };
                match reply.fetch.take() {
                    None => return reply,
                    Some(fetch) => fetch,
                }
            };
            fetched = Some(fetch.wait().await);
        }
    }

    /// An empty buffer of at least [`BUFFER_SIZE`] bytes' capacity.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_SIZE))
    }

    /// Returns a buffer to the pool (one grown past the usual size, for an
    /// unusually large head, is freed instead).
    pub fn return_buffer(&self, mut buffer: Vec<u8>) {
        let mut buffers = self.buffers.borrow_mut();
        if buffer.capacity() <= BUFFER_SIZE * 2 && buffers.len() < MAX_IDLE_BUFFERS {
            buffer.clear();
            buffers.push(buffer);
        }
    }
}
