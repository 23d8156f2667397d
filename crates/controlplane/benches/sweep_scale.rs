//! The sweep (the scheduled reconciler) over fleets of 1,000 to 100,000 tenants on tokio's paused
//! clock: the real `sweep` and the real reconcile, over the in-memory table and stacks behind a
//! simulated AWS with DynamoDB's, CloudFormation's and STS's latencies and limits, and the SDK's
//! own retries of throttles. Prints, per fleet, the virtual time of one pass, the AWS calls and
//! throttles by API, what the sweep reported, what it left on STATUS, and the sweep's own peak
//! memory; then the verdicts against the goal and what bounds the time. `-- --help` lists the
//! knobs.
//!
//! # Sweep at fleet scale
//!
//! **What is measured:** one pass of `triggers::sweep::sweep` (pages of 1,000 tenants from
//! `list_tenants`, each page reconciled `C` at a time by `fan_out`, a quick retry of a page's
//! tenants in up to `quick_retries` = 2 more passes) with `C` = `TENANT_CONCURRENCY`'s default,
//! `StreamSettings::default().concurrency` = 8 (what the `sweep` handler passes), over fleets of
//! 1,000, 10,000 and 100,000 ready tenants, each fleet fresh, in two scenarios: one tenant per
//! account (N accounts) and 100 per account (N/100). Every tenant of a fleet is first created
//! by the real reconcile on the fakes with no latency (not measured: about 1 ms of real time
//! per tenant in the dev profile, so 100,000 take ~105 s), so its STATUS and its stack (tags,
//! fingerprint, parameters) are exactly what a create leaves. A sweep then finds every tenant
//! converged, at one BatchGetItem and one DescribeStacks each, plus an AssumeRole when the
//! account's credentials are not cached, and no write: the first table shows it (N of each at
//! C = 8, 0 PutItem).
//!
//! **The simulated AWS** (uniform in each range, seeded; the fakes keep the truth):
//!
//! | API | latency | limit |
//! |---|---|---|
//! | DynamoDB BatchGetItem (a reconcile's load of SPEC + STATUS, consistent) | 3–8 ms | 2 read units |
//! | DynamoDB Scan of the `tenants` index, 1,000 entries a page (`list_tenants`) | 10–40 ms | 8 read units |
//! | DynamoDB PutItem / TransactWriteItems (a STATUS write alone / with its timeline lines) | 5–15 / 10–30 ms | 1 / 2 per item write units |
//! | table (on-demand, new) | | 12,000 read units/s, 4,000 write units/s (`--table-read-rate`, `--table-write-rate`) |
//! | CloudFormation DescribeStacks (and DescribeStackEvents) | 100–300 ms | token bucket per account and region: 10/s, burst 20 (`--describe-rate`, `--describe-burst`) |
//! | STS AssumeRole (when the account's session is not cached) | 100–300 ms | 30/s for the control-plane account (`--assume-rate`) |
//!
//! A throttled call costs its latency. The adapters' SDK clients retry it as the SDK's standard
//! retry mode does (aws-smithy-runtime 1.16): 3 attempts in all, the wait before retry i
//! uniform in [0, 1 s × 2^(i−1)] (at most 20 s); after the third, the adapter's error: for
//! CloudFormation `StackError::Transient("Throttling: Rate exceeded")`, for STS the same words in
//! "cannot assume …", for DynamoDB `StoreError::Unavailable`. Role credentials are cached as
//! `RoleCredentials` caches them: per account (one session shared by its tenants; the bench
//! tells by whether `assume_role_request` gives two tenants of an account the same request;
//! `--credentials tenant` for the old per-tenant session), for an hour less the 5 minutes of
//! early refresh, in an LRU of `CREDENTIALS_KEPT` = 1,024; the function starts with none (a new
//! instance), and nothing stops two tenants of one account from both assuming its role when
//! neither finds it cached. DynamoDB's Scan returns an index in the hash order of its partition
//! keys, so one account's tenants are spread over the pass (`--consecutive`: account by account,
//! the worst case for the per-account throttle).
//!
//! **Assumptions, and which way they err:**
//!
//! - CloudFormation's DescribeStacks rate: AWS publishes none (it shares the account's API
//!   request rate, which the quotas page does not give). 10/s burst 20 is an assumption in the
//!   range of observed throttling; it never binds here in hash order (8–200 calls in flight
//!   over 1,000–100,000 accounts), only with `--consecutive`.
//! - STS's AssumeRole rate for the calling account: 30/s is an assumption (AWS documents no
//!   per-call figure either); with one tenant per account it bounds a pass from below at any C
//!   (100,000 AssumeRoles ≥ 3,333 s), so that scenario's verdict moves with it (`--assume-rate`).
//! - DynamoDB: an on-demand table's initial throughput (12,000 read / 4,000 write request units
//!   a second, table-wide). Per-partition limits (3,000 RCU, 1,000 WCU) are not modelled: every
//!   row the sweep reads or writes is in its tenant's own partition (`TENANT#id`), a pass reads
//!   each twice at most, and the index Scan reads 8 units a page: no partition comes near its
//!   limit, and the table's limit is not reached either (≤ ~1,500 read units/s at C = 200).
//! - The SDK's retry quota (a client-side token bucket that stops retries once many fail) is not
//!   modelled: with it, heavy throttling fails sooner (errs optimistic).
//! - Not modelled: Lambda's 900 s timeout (the sweep has no deadline; the second table shows how
//!   many tenants a pass first reads within 300 s and 900 s: the rest an invocation that is cut
//!   off never reaches, and the next starts again from the first page); invocations
//!   overlapping (`rate(5 minutes)` with a 900 s timeout: up to three passes at once, sharing
//!   the same limits); published template versions (the sample template is bundled; the
//!   deployed `TableTemplates` reads a version at most once a minute); the SDK clients' own
//!   memory (bounded by `CREDENTIALS_KEPT` × ~1 KiB and `CLIENTS_KEPT` = 256 clients); logging
//!   (no subscriber is installed, so `tracing` costs nothing here; in Lambda every tenant's
//!   span and lines go to CloudWatch).
//!
//! **Memory:** a counting global allocator (`System`, counting live bytes and their peak). The
//! peak sweep bytes are the most bytes live during the sweep less those live just before it,
//! less what the fake table grew by meanwhile (each call into the in-memory table is measured:
//! the rows and audit lines a reconcile writes are DynamoDB's memory, not the function's). So
//! it is the function's own working set: a page of tenant keys, the page's results, `C`
//! reconciles in flight, the credentials cache. In parentheses: what was still live after the
//! sweep (the credentials cache). VmHWM (from /proc/self/status) is the whole process's, for
//! reference: it holds the fakes' 100,000-tenant table (~1 GB, SPEC, STATUS, audit, stacks).
//!
//! **Last run** (seed 42, dev profile, `cargo bench -p controlplane --bench sweep_scale --profile
//! dev`: 278 s of real time, all but ~24 s of it creating the fleets):
//!
//! ```text
//! | tenants | scenario | C | sweep (virtual) | per 1,000 tenants | calls: Scan / BatchGetItem / PutItem + TransactWriteItems / DescribeStacks / AssumeRole | throttled: DescribeStacks / AssumeRole / DynamoDB | converged / failed / retrying / errors | peak sweep bytes (still live after) |
//! |---|---|---|---|---|---|---|---|---|
//! | 1,000 | 1 per account | 8 | 50.9 s | 50.9 s | 1 / 1,000 / 0 + 0 / 1,000 / 1,000 | 0 / 0 / 0 | 1,000 / 0 / 0 / 0 | 0.35 MiB (0.09 MiB) |
//! | 10,000 | 1 per account | 8 | 509.9 s | 51.0 s | 10 / 10,000 / 0 + 0 / 10,000 / 10,000 | 0 / 0 / 0 | 10,000 / 0 / 0 / 0 | 0.39 MiB (0.12 MiB) |
//! | 100,000 | 1 per account | 8 | 5,109 s (1.42 h) | 51.1 s | 100 / 100,000 / 0 + 0 / 100,000 / 100,000 | 0 / 0 / 0 | 100,000 / 0 / 0 / 0 | 0.39 MiB (0.12 MiB) |
//! | 1,000 | 100 per account | 8 | 26.3 s | 26.3 s | 1 / 1,000 / 0 + 0 / 1,000 / 14 | 0 / 0 / 0 | 1,000 / 0 / 0 / 0 | 0.26 MiB (0.00 MiB) |
//! | 10,000 | 100 per account | 8 | 263.3 s | 26.3 s | 10 / 10,000 / 0 + 0 / 10,000 / 106 | 0 / 0 / 0 | 10,000 / 0 / 0 / 0 | 0.27 MiB (0.01 MiB) |
//! | 100,000 | 100 per account | 8 | 2,620 s (0.73 h) | 26.2 s | 100 / 100,000 / 0 + 0 / 100,000 / 1,007 | 0 / 0 / 0 | 100,000 / 0 / 0 / 0 | 0.35 MiB (0.09 MiB) |
//!
//! | tenants | scenario | STATUS written / left not `ready` (naming a throttle) | calls failed after the SDK's retries: DescribeStacks / AssumeRole | other calls | first read within 300 s / 900 s | the fakes' table (not measured; its growth in the sweep) | VmHWM (process) | real: provision / sweep |
//! |---|---|---|---|---|---|---|---|---|
//! | 1,000 | 1 per account | 0 / 0 (0) | 0 / 0 | none | 1,000 / 1,000 | 10.69 MiB (+0.00 MiB) | 23.44 MiB | 1.1 s / 0.1 s |
//! | 10,000 | 1 per account | 0 / 0 (0) | 0 / 0 | none | 5,882 / 10,000 | 102.49 MiB (+0.00 MiB) | 132.25 MiB | 11.7 s / 1.3 s |
//! | 100,000 | 1 per account | 0 / 0 (0) | 0 / 0 | none | 5,894 / 17,633 | 984.29 MiB (+0.00 MiB) | 1186.38 MiB | 112.4 s / 10.6 s |
//! | 1,000 | 100 per account | 0 / 0 (0) | 0 / 0 | none | 1,000 / 1,000 | 10.58 MiB (+0.00 MiB) | 1186.15 MiB | 1.2 s / 0.1 s |
//! | 10,000 | 100 per account | 0 / 0 (0) | 0 / 0 | none | 10,000 / 10,000 | 101.62 MiB (+0.00 MiB) | 1186.15 MiB | 10.9 s / 1.0 s |
//! | 100,000 | 100 per account | 0 / 0 (0) | 0 / 0 | none | 10,602 / 33,724 | 977.13 MiB (+0.00 MiB) | 1186.15 MiB | 108.5 s / 10.1 s |
//!
//! 1 per account at 100,000: 5,109 s (1.42 h) virtual; every tenant still converged: yes; time ≤ 300 s: missed; peak 0.35 MiB at 1,000 → 0.39 MiB at 100,000 (flat) in a 256 MB function: **met**
//!   bound, latency: N × (BatchGetItem + DescribeStacks + AssumeRole) / C: 5,069 s (1.41 h)
//!   bound, STS: AssumeRole calls admitted / rate: 3,333 s (0.93 h)
//!   bound, CloudFormation: DescribeStacks admitted / (accounts × rate): 0.1 s
//!   the limit: latency: N × (BatchGetItem + DescribeStacks + AssumeRole) / C; 406 ms per tenant on the unthrottled critical path (1.00 AssumeRole, 1.00 DescribeStacks admitted per tenant); C for 300 s at that latency: 136, and STS alone needs 3,333 s (0.93 h)
//! 100 per account at 100,000: 2,620 s (0.73 h) virtual; every tenant still converged: yes; time ≤ 300 s: missed; peak 0.26 MiB at 1,000 → 0.35 MiB at 100,000 (flat) in a 256 MB function: **met**
//!   bound, latency: N × (BatchGetItem + DescribeStacks + AssumeRole) / C: 2,594 s (0.72 h)
//!   bound, STS: AssumeRole calls admitted / rate: 33.6 s
//!   bound, CloudFormation: DescribeStacks admitted / (accounts × rate): 10.0 s
//!   the limit: latency: N × (BatchGetItem + DescribeStacks + AssumeRole) / C; 208 ms per tenant on the unthrottled critical path (0.01 AssumeRole, 1.00 DescribeStacks admitted per tenant); C for 300 s at that latency: 70, and STS alone needs 33.6 s
//! ```
//!
//! And at other concurrencies (100,000 tenants; `-- --sizes 100000 --concurrency C`, plus
//! `--consecutive` on the last row):
//!
//! ```text
//! | tenants | scenario | C | sweep (virtual) | per 1,000 tenants | calls: Scan / BatchGetItem / PutItem + TransactWriteItems / DescribeStacks / AssumeRole | throttled: DescribeStacks / AssumeRole / DynamoDB | converged / failed / retrying / errors | STATUS written / left not `ready` | peak sweep bytes |
//! |---|---|---|---|---|---|---|---|---|---|
//! | 100,000 | 100 per account | 100 | 253.2 s | 2.5 s | 100 / 100,956 / 0 + 893 / 100,000 / 3,290 | 0 / 2,221 / 0 | 100,000 / 0 / 0 / 0 | 415 / 0 | 1.81 MiB |
//! | 100,000 | 1 per account | 200 | 2,579 s (0.72 h) | 25.8 s | 100 / 335,160 / 0 + 171,688 / 77,236 / 547,217 | 0 / 469,981 / 0 | 77,236 / 0 / 22,764 / 0 | 65,490 / 22,764 | 3.52 MiB |
//! | 100,000 | 100 per account | 200 | 156.5 s | 1.6 s | 100 / 102,055 / 0 + 1,773 / 99,951 / 5,350 | 0 / 4,242 / 0 | 99,951 / 0 / 49 / 0 | 770 / 49 | 3.40 MiB |
//! | 100,000 | 100 per account, consecutive | 200 | 1,491 s (0.41 h) | 14.9 s | 100 / 194,754 / 0 + 92,317 / 274,824 / 79,318 | 174,824 / 57,337 / 0 | 100,000 / 0 / 0 / 0 | 44,940 / 0 | 3.43 MiB |
//! ```
//!
//! **Reading it:**
//!
//! - **Goal (≤ 300 s for 100,000 tenants, memory flat in N, within a 256 MB function): missed
//!   on time in both scenarios at the deployed C = 8, met on memory in both.** The time is
//!   linear in N (51 s per 1,000 tenants with one per account, 26 s with 100 per account, the
//!   same at every size), and the memory is flat: 0.26–0.39 MiB at C = 8 from 1,000 to 100,000
//!   tenants (3.4 MiB at C = 200), a page and C reconciles, never the fleet.
//! - **What limits it at C = 8: the latency of the stack calls, in series per tenant, at 8 at
//!   a time.** A converged tenant costs BatchGetItem (5.5 ms) + DescribeStacks (200 ms) + an
//!   AssumeRole (200 ms) when its account's session is not cached: N × 406 ms / 8 = 5,069 s with
//!   one tenant per account (every tenant a new account), N × 208 ms / 8 = 2,594 s with 100 per
//!   account (one AssumeRole per account). Nothing is throttled at C = 8. Within Lambda's 900 s
//!   only 17,633 (one per account) or 33,724 (100 per account) of the 100,000 are reached at
//!   all, and every invocation starts again from the first page: as deployed, the rest are never
//!   swept.
//! - **Raising C alone:** with 100 per account, C = 100 meets the goal (253 s, all converged,
//!   2,221 AssumeRoles throttled and retried, 415 tenants recorded `failed` by a throttle and
//!   healed back within the pass). C = 200 takes 157 s but leaves 49 tenants `failed` (retryable):
//!   the tenants of an account that start together all miss its session and all call
//!   AssumeRole (5,350 calls for 1,000 accounts), and STS's 30/s throttles them past the SDK's
//!   retries. With one tenant per account no C reaches the goal: every tenant needs its own
//!   AssumeRole, 100,000 a pass, ≥ 3,333 s at 30/s; at C = 200 the pass ends after 2,579 s with
//!   22,764 tenants recorded `failed` by STS throttling.
//! - **The worst case for the per-account throttle** (`--consecutive`, C = 200: the 200 tenants
//!   in flight mostly in one account): 64 % of DescribeStacks calls throttled (174,824 of
//!   274,824), 34,439 of them past the SDK's retries; 44,940 tenants recorded `failed` and healed
//!   back within the pass; 1,491 s.
//! - **Throttling answered with backoff, not errors: not yet.** A throttle the SDK's 3 attempts
//!   do not absorb becomes a failure that may heal: the reconcile records the ready tenant
//!   `failed` (retryable, "…Throttling: Rate exceeded; will retry after …"), the sweep retries it
//!   twice in the page's next passes, and what still fails stays `failed` until a later look;
//!   each heal back to `ready` is a STATUS transition of its own (with events wired, a new
//!   lifecycle event for a tenant that never changed).
//! - **What would move it** (estimates from the same model):
//!   - *Describe only tenants whose STATUS is not settled* (or whose settled STATUS is older
//!     than a bound): a ready tenant then costs its BatchGetItem alone, 100,000 × 5.5 ms / 8 =
//!     69 s in either scenario, no AssumeRole, no DescribeStacks; the drift job (and the stack
//!     events) already look at settled stacks. This is the one change that meets the goal with
//!     one tenant per account.
//!   - *ListStacks per account instead of DescribeStacks per tenant*: with 100 per account, 1,000
//!     AssumeRoles and ~1,000 ListStacks pages (assuming ~100 summaries a page) instead of 100,000
//!     DescribeStacks: ~2,000 × 200 ms / 8 ≈ 50 s plus the reads (69 s); no help with one per
//!     account (one call per account either way), and a summary has no tags or parameters, so
//!     a stack that looks settled still needs a DescribeStacks to be checked.
//!   - *More concurrency, with one AssumeRole per account at a time* (single-flight in
//!     `RoleCredentials`): C ≈ 71 is the latency bound's 300 s with 100 per account (C = 100
//!     measured: 253 s), without the STS herd that C = 200 shows.
//!   - *Shard the sweep across invocations* (DynamoDB parallel Scan segments, or a resumable
//!     page token kept between invocations): divides the latency bound by the shards, and a
//!     token makes a pass longer than 900 s finish at all; it does not move STS's bound (one
//!     per account: 100,000 AssumeRoles ≥ 3,333 s at any sharding).
//!
//! **Re-run:** `cargo bench -p controlplane --bench sweep_scale --profile dev` (append `--
//! --sizes 1000,10000`, `--tenants N`, `--scenario one-per-account|hundred-per-account|both`,
//! `--tenants-per-account K`, `--concurrency C`, `--describe-rate R`, `--describe-burst B`,
//! `--assume-rate R`, `--table-read-rate R`, `--table-write-rate R`, `--credentials
//! account|tenant`, `--consecutive`, `--sdk-attempts A`, `--seed S`). Virtual time and calls
//! are the same on any machine for the same options (the simulation and the backoff jitter are
//! seeded); the dev profile is used because only the real time would change.

#[path = "support/virtual_time.rs"]
mod virtual_time;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use lru::LruCache;
use serde_dynamo::Item;
use tokio::time::{Instant, sleep};

use controlplane::aws::sts::{CREDENTIALS_KEPT, ExternalIds, assume_role_request};
use controlplane::ports::{
    CurrentGuard, Snapshot, StackError, StackRequest, StackTarget, Stacks, StatusSummary,
    StoreError, TenantStore, UpdateStarted,
};
use controlplane::reconcile::{Clock, Outcome, Reconciler, Settings};
use controlplane::template_source::BundledTemplates;
use controlplane::testing::{FakeStacks, InMemoryStore};
use controlplane::triggers::stream::StreamSettings;
use controlplane::triggers::sweep::{SweepReport, sweep};
use model::audit::AuditEntry;
use model::spec::TenantKey;
use model::stack::ObservedStack;
use model::status::Status;

// ---------------------------------------------------------------------------------------------
// Memory: every allocation of the process counted, live and peak.

/// `System`, counting the bytes live and the most live at once.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most bytes live at once, less what the fake table grew by until then.
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// What the fake table (the rows and audit lines a reconcile wrote) grew by: the table's
/// memory, not the function's, so not part of the peak.
static TABLE_GROWTH: AtomicIsize = AtomicIsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    let table = TABLE_GROWTH.load(Ordering::Relaxed);
    PEAK.fetch_max(live.saturating_sub_signed(table), Ordering::Relaxed);
}

/// Runs a call of the fake table (which completes in one poll: nothing in it waits), counting
/// what the table kept of it as the table's. The call's future is made in here: its box is
/// freed in here too.
async fn in_table<T, F: Future<Output = T>>(call: impl FnOnce() -> F) -> T {
    let before = LIVE.load(Ordering::Relaxed) as isize;
    let result = call().await;
    let after = LIVE.load(Ordering::Relaxed) as isize;
    TABLE_GROWTH.fetch_add(after - before, Ordering::Relaxed);
    result
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's peak resident set (VmHWM), in bytes.
fn max_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

// ---------------------------------------------------------------------------------------------
// Options.

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// One tenant per account (N accounts).
    OnePerAccount,
    /// 100 tenants per account (N / 100 accounts).
    HundredPerAccount,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CredentialsKey {
    /// One session per account, shared by its tenants.
    Account,
    /// One session per (account, tenant).
    Tenant,
}

impl CredentialsKey {
    /// What the control plane's `RoleCredentials` does: one session per account if two tenants
    /// of an account are given the same AssumeRole request.
    fn deployed() -> Self {
        let ids = ExternalIds::new(b"bench".to_vec());
        let of = |tenant| assume_role_request("R", &ids, "aws", "111111111111", tenant);
        if of("t1") == of("t2") {
            Self::Account
        } else {
            Self::Tenant
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "The sweep over fleets of 1,000 to 100,000 tenants on a virtual clock")]
struct Options {
    /// Fleet sizes, each a fresh fleet, run one after another.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 100_000])]
    sizes: Vec<u64>,
    /// One fleet of this size instead of `--sizes`.
    #[arg(long)]
    tenants: Option<u64>,
    #[arg(long, value_enum, default_value_t = Scenario::Both)]
    scenario: Scenario,
    /// Tenants per account, instead of `--scenario`'s.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tenants_per_account: Option<u64>,
    /// Tenants reconciled at once (TENANT_CONCURRENCY; the default is StreamSettings').
    #[arg(long, default_value_t = StreamSettings::default().concurrency)]
    concurrency: usize,
    /// The table's read request units per second (an on-demand table's initial peak: 12,000).
    #[arg(long, default_value_t = 12_000.0)]
    table_read_rate: f64,
    /// The table's write request units per second (an on-demand table's initial peak: 4,000).
    #[arg(long, default_value_t = 4_000.0)]
    table_write_rate: f64,
    /// DescribeStacks (and DescribeStackEvents) calls per second per account and region.
    #[arg(long, default_value_t = 10.0)]
    describe_rate: f64,
    /// The DescribeStacks bucket's size.
    #[arg(long, default_value_t = 20.0)]
    describe_burst: f64,
    /// AssumeRole calls per second from the control-plane account (burst: one second's worth).
    #[arg(long, default_value_t = 30.0)]
    assume_rate: f64,
    /// What role credentials are cached by; default: what `RoleCredentials` does, told by
    /// whether `assume_role_request` gives two tenants of one account the same session.
    #[arg(long, value_enum)]
    credentials: Option<CredentialsKey>,
    /// List the tenants of one account one after another (the worst case for a per-account
    /// throttle) instead of in DynamoDB's hash order.
    #[arg(long)]
    consecutive: bool,
    /// Attempts per call, the first included (the SDK's standard retry mode: 3).
    #[arg(long, default_value_t = 3)]
    sdk_attempts: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    // `cargo bench` passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

// ---------------------------------------------------------------------------------------------
// The simulated AWS.

const REGION: &str = "us-east-1";
/// Index entries per `list_tenants` page (the DynamoDB adapter's `TENANTS_PAGE`).
const PAGE: usize = 1000;
/// A Scan page of 1,000 index entries of ~60 bytes, eventually consistent: ~8 read units.
const SCAN_PAGE_UNITS: f64 = 8.0;
/// A BatchGetItem of SPEC and STATUS, strongly consistent, each under 4 KB.
const LOAD_UNITS: f64 = 2.0;
/// Role sessions last an hour; `RoleCredentials` refreshes them 5 minutes before.
const SESSION: Duration = Duration::from_secs(3600);
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
const THROTTLED: &str = "Throttling: Rate exceeded";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SplitMix64: small, fast, and the same numbers on every machine for a seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn millis(&mut self, (low, high): (u64, u64)) -> Duration {
        Duration::from_millis(low) + Duration::from_millis(high - low).mul_f64(self.unit())
    }
}

/// A well-mixed hash of `text` (FNV-1a, then SplitMix64's finaliser: FNV alone keeps keys with
/// a common prefix close together), standing in for DynamoDB's partition-key hash.
fn key_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    Rng(hash).next_u64()
}

const CALLS: usize = 9;

/// The AWS calls a sweep can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Scan,
    BatchGetItem,
    PutItem,
    TransactWriteItems,
    Query,
    DescribeStacks,
    DescribeStackEvents,
    StackOperation,
    AssumeRole,
}

impl Call {
    const ALL: [Call; CALLS] = [
        Call::Scan,
        Call::BatchGetItem,
        Call::PutItem,
        Call::TransactWriteItems,
        Call::Query,
        Call::DescribeStacks,
        Call::DescribeStackEvents,
        Call::StackOperation,
        Call::AssumeRole,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Scan => "Scan",
            Self::BatchGetItem => "BatchGetItem",
            Self::PutItem => "PutItem",
            Self::TransactWriteItems => "TransactWriteItems",
            Self::Query => "Query",
            Self::DescribeStacks => "DescribeStacks",
            Self::DescribeStackEvents => "DescribeStackEvents",
            Self::StackOperation => "Create/Update/DeleteStack",
            Self::AssumeRole => "AssumeRole",
        }
    }

    /// Latency range, in ms.
    fn latency(self) -> (u64, u64) {
        match self {
            Self::Scan => (10, 40),
            Self::BatchGetItem | Self::Query => (3, 8),
            Self::PutItem => (5, 15),
            // Two phases: about twice a write's latency.
            Self::TransactWriteItems => (10, 30),
            Self::DescribeStacks | Self::DescribeStackEvents | Self::AssumeRole => (100, 300),
            Self::StackOperation => (200, 500),
        }
    }

    fn is_dynamodb(self) -> bool {
        matches!(
            self,
            Self::Scan
                | Self::BatchGetItem
                | Self::PutItem
                | Self::TransactWriteItems
                | Self::Query
        )
    }
}

/// Which limit a call counts against.
enum Limit<'a> {
    TableReads(f64),
    TableWrites(f64),
    /// DescribeStacks and DescribeStackEvents, per account (one region).
    Describe(&'a str),
    Sts,
    None,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(tokens: f64) -> Self {
        Self {
            tokens,
            at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64, cost: f64) -> bool {
        self.tokens = (self.tokens + rate * (now - self.at).as_secs_f64()).min(burst);
        self.at = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    read_rate: f64,
    write_rate: f64,
    describe_rate: f64,
    describe_burst: f64,
    assume_rate: f64,
    attempts: u32,
    per_account_credentials: bool,
}

struct AwsState {
    reads: Bucket,
    writes: Bucket,
    sts: Bucket,
    describe: HashMap<String, Bucket>,
    /// The function's role credentials: when each expires (`RoleCredentials`' LRU cache).
    credentials: LruCache<(String, String), Instant>,
    calls: [u64; CALLS],
    throttles: [u64; CALLS],
    /// Calls that failed even after the SDK's retries.
    failed: [u64; CALLS],
}

/// The AWS one sweep talks to: latency, throttles and the SDK's retries of them.
struct Aws {
    limits: Limits,
    rng: Mutex<Rng>,
    state: Mutex<AwsState>,
}

impl Aws {
    fn new(limits: Limits, seed: u64, accounts: impl IntoIterator<Item = String>) -> Self {
        // Every account's bucket made before the sweep: AWS's state, not the function's.
        let describe = accounts
            .into_iter()
            .map(|account| (account, Bucket::full(limits.describe_burst)))
            .collect();
        Self {
            limits,
            rng: Mutex::new(Rng(seed ^ 0x5eed)),
            state: Mutex::new(AwsState {
                reads: Bucket::full(limits.read_rate),
                writes: Bucket::full(limits.write_rate),
                sts: Bucket::full(limits.assume_rate),
                describe,
                credentials: LruCache::new(CREDENTIALS_KEPT),
                calls: [0; CALLS],
                throttles: [0; CALLS],
                failed: [0; CALLS],
            }),
        }
    }

    /// One SDK operation: up to `attempts` calls, each after its latency admitted or throttled
    /// by its limit; between them the standard retry mode's backoff for a throttle (full
    /// jitter: uniform in [0, 1 s × 2^(retry − 1)], at most 20 s). Err: throttled every time.
    async fn call(&self, call: Call, limit: Limit<'_>) -> Result<(), ()> {
        let l = self.limits;
        for attempt in 1..=l.attempts.max(1) {
            let latency = lock(&self.rng).millis(call.latency());
            sleep(latency).await;
            let now = Instant::now();
            let admitted = {
                let mut state = lock(&self.state);
                state.calls[call as usize] += 1;
                let admitted = match limit {
                    Limit::TableReads(units) => {
                        state.reads.take(now, l.read_rate, l.read_rate, units)
                    }
                    Limit::TableWrites(units) => {
                        state.writes.take(now, l.write_rate, l.write_rate, units)
                    }
                    Limit::Describe(account) => state
                        .describe
                        .entry(account.to_owned())
                        .or_insert_with(|| Bucket::full(l.describe_burst))
                        .take(now, l.describe_rate, l.describe_burst, 1.0),
                    Limit::Sts => state.sts.take(now, l.assume_rate, l.assume_rate, 1.0),
                    Limit::None => true,
                };
                if !admitted {
                    state.throttles[call as usize] += 1;
                    if attempt == l.attempts.max(1) {
                        state.failed[call as usize] += 1;
                    }
                }
                admitted
            };
            if admitted {
                return Ok(());
            }
            if attempt < l.attempts {
                let ceiling = Duration::from_secs(1u64 << (attempt - 1).min(4));
                let backoff = ceiling
                    .mul_f64(lock(&self.rng).unit())
                    .min(Duration::from_secs(20));
                sleep(backoff).await;
            }
        }
        Err(())
    }

    async fn dynamodb(&self, call: Call, limit: Limit<'_>) -> Result<(), StoreError> {
        self.call(call, limit).await.map_err(|()| {
            StoreError::Unavailable(format!(
                "{}: ThrottlingException: Throughput exceeds the current capacity of your table",
                call.name()
            ))
        })
    }

    /// The role credentials for a stack call: cached, else an AssumeRole.
    async fn credentials(&self, at: &StackTarget) -> Result<(), StackError> {
        let account = &at.location.account_id;
        let key = if self.limits.per_account_credentials {
            (account.clone(), String::new())
        } else {
            (account.clone(), at.tenant_id.clone())
        };
        let fresh_until = Instant::now() + REFRESH_BEFORE;
        if lock(&self.state)
            .credentials
            .get(&key)
            .is_some_and(|expiry| *expiry > fresh_until)
        {
            return Ok(());
        }
        self.call(Call::AssumeRole, Limit::Sts)
            .await
            .map_err(|()| {
                StackError::Transient(format!(
                    "cannot assume arn:aws:iam::{account}:role/TenantControlRole: {THROTTLED}"
                ))
            })?;
        lock(&self.state)
            .credentials
            .put(key, Instant::now() + SESSION);
        Ok(())
    }

    async fn stack_call(&self, call: Call, at: &StackTarget) -> Result<(), StackError> {
        self.credentials(at).await?;
        let limit = match call {
            Call::DescribeStacks | Call::DescribeStackEvents => {
                Limit::Describe(&at.location.account_id)
            }
            _ => Limit::None,
        };
        self.call(call, limit)
            .await
            .map_err(|()| StackError::Transient(THROTTLED.into()))
    }
}

/// The tenants table: the in-memory rows behind DynamoDB's latency and capacity, listed in
/// pages of [`PAGE`] as the adapter's Scan of the `tenants` index gives them.
struct SimulatedTable {
    rows: Arc<InMemoryStore>,
    /// Every tenant, in the order the index Scan returns them.
    listing: Vec<TenantKey>,
    aws: Arc<Aws>,
    /// Per tenant (by number, made before the sweep): when a reconcile first read it (ms after
    /// the sweep began), and whether its STATUS was written.
    first_load: Mutex<Vec<u32>>,
    status_written: Mutex<Vec<bool>>,
    started: Instant,
}

fn number_of(tenant: &TenantKey) -> Option<usize> {
    tenant.as_str().strip_prefix('t')?.parse().ok()
}

impl SimulatedTable {
    fn note_load(&self, tenant: &TenantKey) {
        let at = u32::try_from((Instant::now() - self.started).as_millis()).unwrap_or(u32::MAX);
        let mut first = lock(&self.first_load);
        if let Some(slot) = number_of(tenant).and_then(|i| first.get_mut(i)) {
            *slot = (*slot).min(at);
        }
    }

    fn note_status_write(&self, tenant: &TenantKey) {
        let mut written = lock(&self.status_written);
        if let Some(slot) = number_of(tenant).and_then(|i| written.get_mut(i)) {
            *slot = true;
        }
    }
}

#[async_trait]
impl TenantStore for SimulatedTable {
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError> {
        self.note_load(tenant);
        self.aws
            .dynamodb(Call::BatchGetItem, Limit::TableReads(LOAD_UNITS))
            .await?;
        self.rows.load(tenant).await
    }

    async fn list_tenants(
        &self,
        page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        self.aws
            .dynamodb(Call::Scan, Limit::TableReads(SCAN_PAGE_UNITS))
            .await?;
        let start = match page_token {
            None => 0,
            Some(token) => token
                .parse::<usize>()
                .map_err(|e| StoreError::Rejected(format!("page token: {e}")))?,
        };
        let end = (start + PAGE).min(self.listing.len());
        let page = self.listing[start.min(end)..end].to_vec();
        Ok((page, (end < self.listing.len()).then(|| end.to_string())))
    }

    async fn list_in_status(
        &self,
        status: Status,
        page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError> {
        self.aws
            .dynamodb(Call::Query, Limit::TableReads(SCAN_PAGE_UNITS))
            .await?;
        self.rows.list_in_status(status, page_token).await
    }

    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &model::status::TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.aws
            .dynamodb(Call::PutItem, Limit::TableWrites(1.0))
            .await?;
        in_table(|| self.rows.put_status(tenant, status, expected_version)).await?;
        self.note_status_write(tenant);
        Ok(())
    }

    /// As the DynamoDB adapter: one TransactWriteItems when lines or a guard ride along (2
    /// write units per item), else a PutItem.
    async fn put_status_noting(
        &self,
        tenant: &TenantKey,
        status: &model::status::TenantStatus,
        expected_version: Option<u64>,
        entries: &[AuditEntry],
        current: Option<CurrentGuard>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() && current.is_none() {
            return self.put_status(tenant, status, expected_version).await;
        }
        let items = 1 + entries.len() + usize::from(current.is_some());
        self.aws
            .dynamodb(
                Call::TransactWriteItems,
                Limit::TableWrites(2.0 * items as f64),
            )
            .await?;
        in_table(|| {
            self.rows
                .put_status_noting(tenant, status, expected_version, entries, current)
        })
        .await?;
        self.note_status_write(tenant);
        Ok(())
    }

    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError> {
        self.aws
            .dynamodb(Call::PutItem, Limit::TableWrites(1.0))
            .await?;
        in_table(|| self.rows.append_audit(tenant, entry)).await
    }

    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.aws
            .dynamodb(Call::PutItem, Limit::TableWrites(1.0))
            .await?;
        in_table(|| self.rows.append_request(tenant, entry)).await
    }

    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        self.aws
            .dynamodb(Call::Query, Limit::TableReads(1.0))
            .await?;
        self.rows.audit_trail(tenant, page_token, limit).await
    }

    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.aws
            .dynamodb(Call::PutItem, Limit::TableWrites(2.0))
            .await?;
        in_table(|| {
            self.rows
                .remove_spec_for_decommission(tenant, decommission_date, audit)
        })
        .await
    }
}

/// CloudFormation in the tenants' accounts (the fake's stacks and rules), reached through
/// AssumeRole, with latency and throttles.
struct SimulatedCloudFormation {
    stacks: Arc<FakeStacks>,
    aws: Arc<Aws>,
}

#[async_trait]
impl Stacks for SimulatedCloudFormation {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        self.aws.stack_call(Call::DescribeStacks, at).await?;
        self.stacks.describe(at).await
    }

    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        self.aws.stack_call(Call::StackOperation, at).await?;
        self.stacks.create(at, request).await
    }

    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        self.aws.stack_call(Call::StackOperation, at).await?;
        self.stacks.update(at, request).await
    }

    async fn delete(&self, at: &StackTarget, client_request_token: &str) -> Result<(), StackError> {
        self.aws.stack_call(Call::StackOperation, at).await?;
        self.stacks.delete(at, client_request_token).await
    }

    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        client_request_token: &str,
    ) -> Result<(), StackError> {
        self.aws.stack_call(Call::StackOperation, at).await?;
        self.stacks
            .continue_update_rollback(at, client_request_token)
            .await
    }

    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        self.aws.stack_call(Call::DescribeStackEvents, at).await?;
        self.stacks.failure_reason(at).await
    }
}

// ---------------------------------------------------------------------------------------------
// One fleet, one sweep.

fn credentials_key(options: &Options) -> CredentialsKey {
    options.credentials.unwrap_or_else(CredentialsKey::deployed)
}

fn spec(tenant: &str, account: &str) -> Item {
    let json = serde_json::json!({
        "pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
        "account_id": account, "config": {"player_count": 4}, "updated_by": "bench"
    });
    model::item_json::item_of_json(&json)
}

fn account_of(i: u64, per_account: u64) -> String {
    format!("{:012}", 100_000_000_000u64 + i / per_account)
}

/// What one sweep of one fleet gave.
struct Run {
    tenants: u64,
    per_account: u64,
    concurrency: usize,
    took: Duration,
    calls: [u64; CALLS],
    throttles: [u64; CALLS],
    failed_calls: [u64; CALLS],
    report: SweepReport,
    /// Tenants whose STATUS is no longer `ready` after the sweep, and of those how many name a
    /// throttle.
    not_ready: usize,
    not_ready_throttled: usize,
    /// Tenants first read within 300 s and within 900 s of the sweep's start.
    reached_300: usize,
    reached_900: usize,
    /// The most bytes live during the sweep above those live just before it, and those still
    /// live after it (the rows and audit lines it wrote into the fake table, the credentials).
    peak_sweep_bytes: usize,
    retained_bytes: usize,
    table_growth: isize,
    /// Tenants whose STATUS the sweep wrote (each a `failed` recorded, or healed back).
    status_written: usize,
    table_bytes: usize,
    max_rss: Option<u64>,
    provision_real: Duration,
    sweep_real: Duration,
}

impl Run {
    fn accounts(&self) -> u64 {
        self.tenants.div_ceil(self.per_account)
    }

    fn scenario(&self) -> String {
        match self.per_account {
            1 => "1 per account".into(),
            n => format!("{n} per account"),
        }
    }
}

async fn run_fleet(
    options: &Options,
    templates: Arc<BundledTemplates>,
    n: u64,
    per_account: u64,
) -> Result<Run, String> {
    let start = Instant::now();
    let epoch = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .map_err(|e| e.to_string())?
        .with_timezone(&Utc);
    let clock: Clock = Arc::new(move || {
        epoch + chrono::TimeDelta::from_std(Instant::now() - start).unwrap_or_default()
    });
    let settings = Settings::new(REGION);

    // The fleet: every tenant created by the real reconcile on the fakes (no latency), so its
    // STATUS and its stack are exactly what a create leaves.
    let before_table = LIVE.load(Ordering::Relaxed);
    let provision = std::time::Instant::now();
    let store = Arc::new(InMemoryStore::default());
    let stacks = Arc::new(FakeStacks::default());
    let keys: Vec<TenantKey> = (0..n).map(|i| TenantKey::new(format!("t{i:06}"))).collect();
    for (i, key) in keys.iter().enumerate() {
        store.put_spec(key, spec(key.as_str(), &account_of(i as u64, per_account)));
    }
    {
        let provisioner = Reconciler::new(
            store.clone(),
            stacks.clone(),
            templates.clone(),
            settings.clone(),
        )
        .with_clock(clock.clone());
        for key in &keys {
            match provisioner.reconcile(key).await {
                Ok(Outcome::Converged(Some(Status::Ready))) => {}
                other => return Err(format!("{key} not provisioned: {other:?}")),
            }
        }
    }
    let provision_real = provision.elapsed();

    // DynamoDB's Scan order: by the hash of the partition key, or accounts one after another.
    let mut listing = keys.clone();
    if !options.consecutive {
        listing.sort_by_key(|k| key_hash(&format!("TENANT#{}", k.as_str())));
    }
    let aws = Arc::new(Aws::new(
        Limits {
            read_rate: options.table_read_rate,
            write_rate: options.table_write_rate,
            describe_rate: options.describe_rate,
            describe_burst: options.describe_burst,
            assume_rate: options.assume_rate,
            attempts: options.sdk_attempts,
            per_account_credentials: credentials_key(options) == CredentialsKey::Account,
        },
        options.seed ^ n ^ (per_account << 40),
        (0..n.div_ceil(per_account)).map(|a| account_of(a * per_account, per_account)),
    ));
    let table = Arc::new(SimulatedTable {
        rows: store.clone(),
        listing,
        aws: aws.clone(),
        first_load: Mutex::new(vec![u32::MAX; n as usize]),
        status_written: Mutex::new(vec![false; n as usize]),
        started: Instant::now(),
    });
    let cloudformation = Arc::new(SimulatedCloudFormation {
        stacks: stacks.clone(),
        aws: aws.clone(),
    });
    let reconciler = Reconciler::new(
        table.clone(),
        cloudformation,
        templates.clone(),
        settings.clone(),
    )
    .with_clock(clock.clone());
    let table_bytes = LIVE.load(Ordering::Relaxed).saturating_sub(before_table);

    // The sweep, measured.
    TABLE_GROWTH.store(0, Ordering::Relaxed);
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let real = std::time::Instant::now();
    let began = Instant::now();
    let report = sweep(table.as_ref(), &reconciler, options.concurrency)
        .await
        .map_err(|e| e.to_string())?;
    let took = Instant::now() - began;
    let sweep_real = real.elapsed();
    let peak_sweep_bytes = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);
    let table_growth = TABLE_GROWTH.swap(0, Ordering::Relaxed);
    let retained_bytes = LIVE
        .load(Ordering::Relaxed)
        .saturating_sub(baseline)
        .saturating_sub_signed(table_growth);

    let mut not_ready = 0;
    let mut not_ready_throttled = 0;
    for key in &keys {
        let status = store.status(key);
        if status.as_ref().map(|s| s.status) != Some(Status::Ready) {
            not_ready += 1;
            if status
                .and_then(|s| s.reason)
                .is_some_and(|r| r.contains("Throttl"))
            {
                not_ready_throttled += 1;
            }
        }
    }
    let (reached_300, reached_900) = {
        let first = lock(&table.first_load);
        (
            first.iter().filter(|&&ms| ms <= 300_000).count(),
            first.iter().filter(|&&ms| ms <= 900_000).count(),
        )
    };
    let status_written = lock(&table.status_written).iter().filter(|w| **w).count();
    let state = lock(&aws.state);
    Ok(Run {
        tenants: n,
        per_account,
        concurrency: options.concurrency,
        took,
        calls: state.calls,
        throttles: state.throttles,
        failed_calls: state.failed,
        report,
        not_ready,
        not_ready_throttled,
        reached_300,
        reached_900,
        peak_sweep_bytes,
        retained_bytes,
        table_growth,
        status_written,
        table_bytes,
        max_rss: max_rss(),
        provision_real,
        sweep_real,
    })
}

// ---------------------------------------------------------------------------------------------
// Output.

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 600.0 {
        format!("{} s ({:.2} h)", grouped(s.round() as u64), s / 3600.0)
    } else {
        format!("{s:.1} s")
    }
}

fn count(run: &Run, call: Call) -> u64 {
    run.calls[call as usize]
}

fn dynamodb_throttles(run: &Run) -> u64 {
    Call::ALL
        .iter()
        .filter(|c| c.is_dynamodb())
        .map(|c| run.throttles[*c as usize])
        .sum()
}

fn print_tables(runs: &[Run]) {
    println!(
        "| tenants | scenario | C | sweep (virtual) | per 1,000 tenants | calls: Scan / BatchGetItem / PutItem + TransactWriteItems / DescribeStacks / AssumeRole | throttled: DescribeStacks / AssumeRole / DynamoDB | converged / failed / retrying / errors | peak sweep bytes (still live after) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        println!(
            "| {} | {} | {} | {} | {:.1} s | {} / {} / {} + {} / {} / {} | {} / {} / {} | {} / {} / {} / {} | {} ({}) |",
            grouped(run.tenants),
            run.scenario(),
            run.concurrency,
            secs(run.took),
            run.took.as_secs_f64() * 1000.0 / run.tenants as f64,
            grouped(count(run, Call::Scan)),
            grouped(count(run, Call::BatchGetItem)),
            grouped(count(run, Call::PutItem)),
            grouped(count(run, Call::TransactWriteItems)),
            grouped(count(run, Call::DescribeStacks)),
            grouped(count(run, Call::AssumeRole)),
            grouped(run.throttles[Call::DescribeStacks as usize]),
            grouped(run.throttles[Call::AssumeRole as usize]),
            grouped(dynamodb_throttles(run)),
            grouped(run.report.converged as u64),
            grouped(run.report.failed as u64),
            grouped(run.report.retrying as u64),
            grouped(run.report.errors as u64),
            mib(run.peak_sweep_bytes as u64),
            mib(run.retained_bytes as u64),
        );
    }
    println!();
    println!(
        "| tenants | scenario | STATUS written / left not `ready` (naming a throttle) | calls failed after the SDK's retries: DescribeStacks / AssumeRole | other calls | first read within 300 s / 900 s | the fakes' table (not measured; its growth in the sweep) | VmHWM (process) | real: provision / sweep |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for run in runs {
        let other: Vec<String> = [Call::Query, Call::DescribeStackEvents, Call::StackOperation]
            .iter()
            .filter(|c| run.calls[**c as usize] > 0)
            .map(|c| format!("{} {}", c.name(), grouped(run.calls[*c as usize])))
            .collect();
        println!(
            "| {} | {} | {} / {} ({}) | {} / {} | {} | {} / {} | {} ({:+.2} MiB) | {} | {:.1} s / {:.1} s |",
            grouped(run.tenants),
            run.scenario(),
            grouped(run.status_written as u64),
            grouped(run.not_ready as u64),
            grouped(run.not_ready_throttled as u64),
            grouped(run.failed_calls[Call::DescribeStacks as usize]),
            grouped(run.failed_calls[Call::AssumeRole as usize]),
            if other.is_empty() {
                "none".to_owned()
            } else {
                other.join(", ")
            },
            grouped(run.reached_300 as u64),
            grouped(run.reached_900 as u64),
            mib(run.table_bytes as u64),
            run.table_growth as f64 / (1024.0 * 1024.0),
            run.max_rss.map_or("-".into(), mib),
            run.provision_real.as_secs_f64(),
            run.sweep_real.as_secs_f64(),
        );
    }
}

const GOAL: Duration = Duration::from_secs(300);
const FUNCTION_MEMORY: u64 = 256 * 1024 * 1024;

/// The verdict for one scenario: its largest fleet against the goal, its smallest for growth.
fn verdict(options: &Options, runs: &[&Run]) {
    let (Some(small), Some(large)) = (
        runs.iter().min_by_key(|r| r.tenants),
        runs.iter().max_by_key(|r| r.tenants),
    ) else {
        return;
    };
    let n = large.tenants as f64;
    let c = large.concurrency as f64;
    // Throttling must be answered with backoff, not with tenants recorded `failed`.
    let all_converged = large.not_ready == 0
        && large.report.converged == large.tenants as usize
        && large.report.errors == 0;
    let time_met = large.took <= GOAL && all_converged;
    let flat = large.peak_sweep_bytes <= small.peak_sweep_bytes.max(1) * 2;
    let fits = (large.peak_sweep_bytes as u64) < FUNCTION_MEMORY / 4;
    // What the limits had to let through: the calls that were not throttled.
    let assumes =
        (count(large, Call::AssumeRole) - large.throttles[Call::AssumeRole as usize]) as f64;
    let describes = (count(large, Call::DescribeStacks)
        - large.throttles[Call::DescribeStacks as usize]) as f64;
    // The critical path of one converged tenant, unthrottled: its read, its AssumeRole (when
    // not cached), its DescribeStacks, at the means of their ranges.
    let mean = |call: Call| {
        let (low, high) = call.latency();
        (low + high) as f64 / 2000.0
    };
    let per_tenant = mean(Call::BatchGetItem)
        + mean(Call::DescribeStacks) * describes / n
        + mean(Call::AssumeRole) * assumes / n;
    let bounds = [
        (
            "latency: N × (BatchGetItem + DescribeStacks + AssumeRole) / C",
            n * per_tenant / c,
        ),
        (
            "STS: AssumeRole calls admitted / rate",
            assumes / options.assume_rate,
        ),
        (
            "CloudFormation: DescribeStacks admitted / (accounts × rate)",
            describes / (large.accounts() as f64 * options.describe_rate),
        ),
    ];
    let limit = bounds
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or("-", |b| b.0);
    println!(
        "{} at {}: {} virtual; every tenant still converged: {}; time ≤ {} s: {}; peak {} at {} → {} at {} ({}) in a 256 MB function: {}",
        large.scenario(),
        grouped(large.tenants),
        secs(large.took),
        if all_converged && large.status_written == 0 {
            "yes".to_owned()
        } else if all_converged {
            format!(
                "yes, but {} were recorded `failed` by a throttle and healed back",
                grouped(large.status_written as u64)
            )
        } else {
            format!(
                "no ({} left not ready, {} naming a throttle)",
                grouped(large.not_ready as u64),
                grouped(large.not_ready_throttled as u64)
            )
        },
        GOAL.as_secs(),
        if time_met { "**met**" } else { "missed" },
        mib(small.peak_sweep_bytes as u64),
        grouped(small.tenants),
        mib(large.peak_sweep_bytes as u64),
        grouped(large.tenants),
        if flat { "flat" } else { "grows" },
        if flat && fits { "**met**" } else { "missed" },
    );
    for (name, bound) in bounds {
        println!("  bound, {name}: {}", secs(Duration::from_secs_f64(bound)));
    }
    println!(
        "  the limit: {limit}; {:.0} ms per tenant on the unthrottled critical path ({:.2} AssumeRole, {:.2} DescribeStacks admitted per tenant); C for 300 s at that latency: {:.0}, and STS alone needs {}",
        per_tenant * 1000.0,
        assumes / n,
        describes / n,
        (n * per_tenant / GOAL.as_secs_f64()).ceil(),
        secs(Duration::from_secs_f64(assumes / options.assume_rate)),
    );
    let mut flags = Vec::new();
    if options.concurrency != StreamSettings::default().concurrency {
        flags.push(format!("--concurrency {}", options.concurrency));
    }
    if let Some(key) = options.credentials {
        flags.push(format!("--credentials {key:?}").to_lowercase());
    }
    if options.consecutive {
        flags.push("--consecutive".into());
    }
    let command = if flags.is_empty() {
        String::new()
    } else {
        format!(" -- {}", flags.join(" "))
    };
    println!(
        "BENCHMARKS.md: | sweep: one pass over {} tenants ({}), C = {}, simulated AWS (DescribeStacks {}/s burst {} per account, AssumeRole {}/s, table {} RRU/s) | {} virtual ({:.1} s per 1,000); {} DescribeStacks + {} AssumeRole calls, {} / {} throttled; {} left not ready; peak {} | 300 s, memory flat, ≤ 256 MB | {:.2} | {} | `cargo bench -p controlplane --bench sweep_scale --profile dev{command}` |",
        grouped(large.tenants),
        large.scenario(),
        large.concurrency,
        options.describe_rate,
        options.describe_burst,
        options.assume_rate,
        grouped(options.table_read_rate as u64),
        secs(large.took),
        large.took.as_secs_f64() * 1000.0 / n,
        grouped(count(large, Call::DescribeStacks)),
        grouped(count(large, Call::AssumeRole)),
        grouped(large.throttles[Call::DescribeStacks as usize]),
        grouped(large.throttles[Call::AssumeRole as usize]),
        grouped(large.not_ready as u64),
        mib(large.peak_sweep_bytes as u64),
        large.took.as_secs_f64() / GOAL.as_secs_f64(),
        match (time_met, flat && fits) {
            (true, true) => "**met**",
            (false, true) => "time missed; memory **met**",
            (true, false) => "time **met**; memory missed",
            (false, false) => "missed",
        },
    );
}

async fn run(options: Options, wall: std::time::Instant) -> Result<(), String> {
    let templates = Arc::new(BundledTemplates::sample().map_err(|e| e.to_string())?);
    let sizes = match options.tenants {
        Some(n) => vec![n],
        None => options.sizes.clone(),
    };
    let scenarios: Vec<u64> = match (options.tenants_per_account, options.scenario) {
        (Some(k), _) => vec![k],
        (None, Scenario::OnePerAccount) => vec![1],
        (None, Scenario::HundredPerAccount) => vec![100],
        (None, Scenario::Both) => vec![1, 100],
    };
    println!(
        "sweep over {:?} tenants, {:?} per account, C = {}, seed {}; DescribeStacks {}/s burst {} per account, AssumeRole {}/s, table {} RRU/s / {} WRU/s, {} SDK attempts, credentials per {}, listing {}",
        sizes,
        scenarios,
        options.concurrency,
        options.seed,
        options.describe_rate,
        options.describe_burst,
        options.assume_rate,
        options.table_read_rate,
        options.table_write_rate,
        options.sdk_attempts,
        match credentials_key(&options) {
            CredentialsKey::Account => "account",
            CredentialsKey::Tenant => "(account, tenant)",
        },
        if options.consecutive {
            "account by account"
        } else {
            "in hash order"
        },
    );
    let mut runs = Vec::new();
    for &per_account in &scenarios {
        for &n in &sizes {
            let run = run_fleet(&options, templates.clone(), n, per_account).await?;
            eprintln!(
                "{} tenants, {}: {} virtual; real {:.1} s provisioning + {:.1} s sweep",
                grouped(n),
                run.scenario(),
                secs(run.took),
                run.provision_real.as_secs_f64(),
                run.sweep_real.as_secs_f64()
            );
            runs.push(run);
        }
    }
    println!();
    print_tables(&runs);
    println!();
    for &per_account in &scenarios {
        let of: Vec<&Run> = runs
            .iter()
            .filter(|r| r.per_account == per_account)
            .collect();
        verdict(&options, &of);
    }
    println!();
    println!("real wall time: {:.1} s", wall.elapsed().as_secs_f64());
    let unaccounted: Vec<String> = runs
        .iter()
        .filter(|r| r.report.tenants != r.tenants as usize)
        .map(|r| format!("{} listed of {}", r.report.tenants, r.tenants))
        .collect();
    if !unaccounted.is_empty() {
        return Err(unaccounted.join("; "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let wall = std::time::Instant::now();
    let options = Options::parse();
    virtual_time::run_paused("sweep_scale", run(options, wall))
}
