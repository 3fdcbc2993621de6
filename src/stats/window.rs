//! The sliding-window KS statistic against a fixed reference, maintained per
//! event.
//!
//! A [`KsReference`] holds a baseline sample as its distinct sorted values
//! u_1 < … < u_k with their multiplicities. It is immutable and meant to be
//! shared between features and windows through an [`Arc`].
//!
//! A [`SlidingKs`] is a window of raw values over one feature. It gives
//! n·m·D⁺, n·m·D⁻ and n·m·D as exact integers after every event, where D⁺ =
//! max(F_W − F_B) and D⁻ = max(F_B − F_W) take the window as the *first*
//! sample, as `scipy.stats.ks_2samp(window, baseline)` does.
//!
//! # Slots
//!
//! Every possible window value has a slot (DESIGN.md, "Incremental KS"):
//! slot 2j for a value equal to u_j, slot 2j+1 for values strictly between
//! u_j and u_{j+1} (u_0 = −∞, u_{k+1} = +∞). Slot 0 exists but is always
//! empty. With C_W(s) the number of window values in slots ≤ s and L(s) =
//! C_B(⌊s/2⌋), n·m·D = max over s of |V(s)| where V(s) = m·C_W(s) − n·L(s).
//!
//! # Why a prefix tree and not lazy range-add
//!
//! DESIGN.md derives a segment tree with lazy range-add over V. We keep the
//! equivalent point-update shape instead: V(s) is the prefix sum of the
//! steps a_s = m·w_s − n·l_s (w_s window values in slot s, l_s baseline
//! values added at slot s), and a node that stores (sum, max prefix, min
//! prefix) of its range combines its children in O(1) with no pending tags.
//! An event changes two steps (−m where the evicted value was, +m where the
//! new one goes) and touches two root-to-leaf paths, with no pushes.
//!
//! Measured choices on top of that (window 1,000, k = 5,000; timings on
//! the shared development machine, under load, so relative):
//!
//! - Slots 2p and 2p+1 are handled as one *pair* p (= 0..=k). Within a pair
//!   V is lowest after the even slot and highest after the odd one, because
//!   the odd slot only ever adds window mass; a pair feeds one candidate to
//!   the min and one to the max.
//! - The window keeps the steps a_s (`i64`) rather than the counts w_s,
//!   which takes the multiplications out of every scan.
//! - The tree's leaves are blocks of 16 pairs, rescanned
//!   linearly on update: at k = 5,000 there are 313 leaves instead of
//!   10,002 slots. Blocks of 8 and 32 pairs measured slower.
//! - Above the blocks the tree is 16-ary and shallow (one level and a
//!   20-node root fold at k = 5,000), each node refolded from its children,
//!   where a binary tree takes nine dependent load-combine-store steps. The
//!   two were level at k ≤ 5,000 and the wide one 18% faster at 50,000; it
//!   also lets the evicted and inserted values share the upper folds.
//! - The slot search runs over a 16-ary static search tree of fences (see
//!   [`KsReference::slot`]) instead of a binary search over 5,000 values,
//!   which had been a third of the update time.
//!
//! Memory per feature (k = 5,000, n = 1,000, measured by the bench's
//! counting allocator): about 160 KiB, of which 61 KiB is the shared
//! reference and 78 KiB the steps. Steps as `i32` (valid while n·m < 2^31)
//! would save 39 KiB but measured no faster at this size, so a single
//! `i64` code path was kept; the budget of 200 KiB is met without it.
//!
//! # Settling the tree only when D is read
//!
//! [`SlidingKs::push_deferred`] only updates two steps and marks their
//! blocks; [`SlidingKs::settle`] rescans each marked block once and refolds
//! the nodes above them ([`SlidingKs::push`] does both). Between
//! settles, [`SlidingKs::d_scaled_at_most`] bounds n·m·D by its value at the
//! last settle plus m per push, since a push moves every V(s) by at most m.
//! When that bound reaches the monitor's threshold,
//! [`SlidingKs::tighten`] replaces it with one from per-block counts of the
//! values inserted and evicted since the settle, which grows like the
//! square root of the pushes rather than linearly, and only when that one
//! reaches the threshold is the tree settled. With no drift, D sits well
//! below the threshold and a window is settled once in hundreds of events. The verdict is exact either way; reading D from
//! an unsettled window falls back to an O(k) scan, so every read is exact
//! too.
//!
//! # Fill and variable-size windows
//!
//! The steps weigh baseline values by the window's capacity n, so the tree's
//! root is D only while the window holds exactly `capacity` values. At any
//! other length n′ (a count window still filling, an event-time window
//! driven with [`SlidingKs::insert`] and [`SlidingKs::pop_oldest`]) the
//! extremes are computed in O(k) when read, reweighting each baseline step
//! by n − n′. The tree is kept up to date either way, so it is ready as
//! soon as the length is back at capacity.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{StatsError, check_sample};

/// Slot pairs per leaf block of the prefix tree. 16 pairs (32 steps, four
/// cache lines) measured fastest at k = 1,000 to 50,000 among 8, 16 and 32:
/// the linear scan and the work above the blocks trade off around there.
const BLOCK_PAIRS: usize = 16;

/// Distinct values per fence group of the slot search (see
/// [`KsReference::slot`]).
const FENCE: usize = 16;

/// Largest n·m accepted, so that every scaled value is exact in `i64`
/// arithmetic and in the `f64` returned by [`SlidingKs::statistic`].
const MAX_SCALE: u64 = 1 << 53;

/// A baseline sample prepared for sliding-window KS: distinct sorted values
/// and their multiplicities. Immutable once built; share it with [`Arc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "KsReferenceRepr", into = "KsReferenceRepr")]
pub struct KsReference {
    /// u_1 < … < u_k.
    values: Vec<f64>,
    /// Search levels above `values`: `fences[0]` holds the last value of
    /// each full group of [`FENCE`] values, each next level does the same
    /// for the one below, and the last has at most 2·[`FENCE`] values.
    fences: Vec<Vec<f64>>,
    /// `counts[p]` is the multiplicity of u_p. `counts[0] = 0` stands for
    /// u_0 = −∞ so that pair p and `counts[p]` line up, and trailing zeros
    /// pad the pairs to whole blocks so that every block scan has a fixed
    /// length.
    counts: Vec<u32>,
    /// m, the baseline sample size.
    size: u64,
}

/// The serialized form of a [`KsReference`], validated on the way in.
#[derive(Serialize, Deserialize)]
struct KsReferenceRepr {
    values: Vec<f64>,
    counts: Vec<u32>,
}

impl KsReference {
    /// Prepares a baseline sample. Rejects an empty sample and NaN or ±∞,
    /// naming the offending index.
    pub fn new(sample: &[f64]) -> Result<Self, StatsError> {
        check_sample("baseline", sample)?;
        let mut sorted = sample.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);

        // `==` rather than bitwise equality, so −0.0 and 0.0 share a value,
        // as they do when a window value is located with `<`.
        let mut values = Vec::new();
        let mut counts = Vec::new();
        for x in sorted {
            match (values.last(), counts.last_mut()) {
                (Some(&last), Some(count)) if last == x => {
                    *count = u32::checked_add(*count, 1).ok_or_else(too_many)?;
                }
                _ => {
                    values.push(x);
                    counts.push(1);
                }
            }
        }
        Ok(Self::assemble(values, &counts))
    }

    /// Builds the derived fields from validated distinct values and their
    /// multiplicities.
    fn assemble(mut values: Vec<f64>, multiplicities: &[u32]) -> Self {
        values.shrink_to_fit();
        let pairs = values.len() + 1;
        let mut counts = Vec::with_capacity(pairs.next_multiple_of(BLOCK_PAIRS));
        counts.push(0);
        counts.extend_from_slice(multiplicities);
        counts.resize(pairs.next_multiple_of(BLOCK_PAIRS), 0);

        let mut fences: Vec<Vec<f64>> = Vec::new();
        while fences.last().map_or(values.len(), Vec::len) > 2 * FENCE {
            let below = fences.last().unwrap_or(&values);
            let level = below.chunks_exact(FENCE).map(|group| group[FENCE - 1]);
            fences.push(level.collect());
        }
        Self {
            fences,
            size: multiplicities.iter().map(|&c| u64::from(c)).sum(),
            values,
            counts,
        }
    }

    /// m, the number of values in the baseline sample.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// k, the number of distinct baseline values.
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    /// The distinct baseline values u_1 < … < u_k.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The multiplicity of each distinct value, aligned with
    /// [`values`](Self::values). C_B(j) is the sum of the first j.
    pub fn multiplicities(&self) -> &[u32] {
        &self.counts[1..=self.values.len()]
    }

    /// Number of slots, 2k + 2 (slot 0 is never used; see the module docs).
    pub fn slot_count(&self) -> usize {
        2 * self.values.len() + 2
    }

    /// The slot of a window value: 2j if it equals u_j, 2j+1 if it lies
    /// strictly between u_j and u_{j+1}. `x` must be finite (NaN would land
    /// in slot 1); [`SlidingKs`] checks before calling.
    ///
    /// A plain binary search over 5,000 values is a chain of 13 dependent
    /// loads that mostly miss L1 and was a third of the update's time.
    /// Instead the fences form a static 16-ary search tree: each level
    /// counts the values below `x` in one group of 16, which compiles to
    /// branch-free vector compares over two cache lines.
    pub fn slot(&self, x: f64) -> usize {
        let top = self.fences.last().unwrap_or(&self.values);
        let mut below = count_below(top, x);
        // The levels below the top, coarsest first, ending with the values
        // (none when the values are the top).
        let lower = self.fences.iter().rev().skip(1).chain([&self.values]);
        for level in lower.take(self.fences.len()) {
            let start = below * FENCE;
            let end = (start + FENCE).min(level.len());
            below = start + count_below(&level[start..end], x);
        }
        match self.values.get(below) {
            Some(&u) if u == x => 2 * (below + 1),
            _ => 2 * below + 1,
        }
    }

    /// Heap bytes held by this reference (its allocations' capacities).
    pub fn heap_bytes(&self) -> usize {
        let fences: usize = self.fences.iter().map(Vec::capacity).sum();
        (self.values.capacity() + fences) * size_of::<f64>()
            + self.fences.capacity() * size_of::<Vec<f64>>()
            + self.counts.capacity() * size_of::<u32>()
    }

    /// Multiplicities per pair, padded to whole blocks.
    fn pair_counts(&self) -> &[u32] {
        &self.counts
    }
}

/// How many of `sorted` are below `x`; a count rather than a search so that
/// it vectorizes.
fn count_below(sorted: &[f64], x: f64) -> usize {
    sorted.iter().filter(|&&u| u < x).count()
}

fn too_many() -> StatsError {
    StatsError::InvalidArgument {
        name: "baseline",
        reason: format!("a value repeats more than {} times", u32::MAX),
    }
}

impl From<KsReference> for KsReferenceRepr {
    fn from(reference: KsReference) -> Self {
        Self {
            counts: reference.multiplicities().to_vec(),
            values: reference.values,
        }
    }
}

impl TryFrom<KsReferenceRepr> for KsReference {
    type Error = StatsError;

    fn try_from(repr: KsReferenceRepr) -> Result<Self, StatsError> {
        check_sample("baseline", &repr.values)?;
        let invalid = |reason: &str| StatsError::InvalidArgument {
            name: "baseline",
            reason: reason.to_owned(),
        };
        if repr.counts.len() != repr.values.len() {
            return Err(invalid("values and counts differ in length"));
        }
        if repr.values.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(invalid("values are not strictly increasing"));
        }
        if repr.counts.contains(&0) {
            return Err(invalid("a count is zero"));
        }
        Ok(Self::assemble(repr.values, &repr.counts))
    }
}

/// The one-sided extremes of a window against its reference, as exact
/// integers scaled by n·m, where n is the window's length when they were
/// read and m the baseline size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KsExtremes {
    /// n·m·max(F_W − F_B).
    pub d_plus_scaled: u64,
    /// n·m·max(F_B − F_W).
    pub d_minus_scaled: u64,
    /// n, the window length the values are scaled by.
    pub window_len: u64,
    /// m, the baseline size.
    pub reference_len: u64,
}

impl KsExtremes {
    /// n·m·D with D = max(D⁺, D⁻).
    pub fn d_scaled(&self) -> u64 {
        self.d_plus_scaled.max(self.d_minus_scaled)
    }

    /// D itself; 0 for an empty window (there is no evidence of drift).
    pub fn statistic(&self) -> f64 {
        let scale = self.window_len * self.reference_len;
        if scale == 0 {
            return 0.0;
        }
        self.d_scaled() as f64 / scale as f64
    }
}

/// Sum, lowest prefix and highest prefix of a run of steps a_s. The empty
/// prefix (0) counts, which is harmless: V is 0 before the first slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Summary {
    sum: i64,
    max: i64,
    min: i64,
}

impl Summary {
    /// The summary of `self`'s run followed by `next`'s.
    fn then(self, next: Summary) -> Summary {
        Summary {
            sum: self.sum + next.sum,
            max: self.max.max(self.sum + next.max),
            min: self.min.min(self.sum + next.min),
        }
    }
}

/// Summarises consecutive pairs of steps (even slot, odd slot). Within a
/// pair V is lowest after the even slot and highest after the odd one, so
/// each pair feeds one candidate to the min and one to the max.
fn scan_steps(steps: &[i64]) -> Summary {
    let mut acc = Summary::default();
    for &[at_value, between] in steps.as_chunks::<2>().0 {
        acc.min = acc.min.min(acc.sum + at_value);
        acc.sum += at_value + between;
        acc.max = acc.max.max(acc.sum);
    }
    acc
}

/// [`scan_steps`] for a window of another length n′: steps were built with
/// baseline values weighing n, and a′_s = a_s + (n − n′)·l_s.
fn scan_reweighted(steps: &[i64], baseline: &[u32], shift: i64) -> Summary {
    let mut acc = Summary::default();
    for (&[at_value, between], &count) in steps.as_chunks::<2>().0.iter().zip(baseline) {
        let at_value = at_value + shift * i64::from(count);
        acc.min = acc.min.min(acc.sum + at_value);
        acc.sum += at_value + between;
        acc.max = acc.max.max(acc.sum);
    }
    acc
}

/// Summary of consecutive runs.
fn fold(runs: &[Summary]) -> Summary {
    runs.iter()
        .fold(Summary::default(), |acc, &run| acc.then(run))
}

/// Summary of one block. Fixed-size chunks let the compiler unroll the scan
/// and drop the bounds checks.
fn block_summary(steps: &[i64], block: usize) -> Summary {
    scan_steps(&steps.as_chunks::<{ 2 * BLOCK_PAIRS }>().0[block])
}

/// An empty level with room for its padding, so padding never reallocates
/// (a doubling there would cost a few KiB per window).
fn padded(len: usize) -> Vec<Summary> {
    Vec::with_capacity(len.next_multiple_of(FANOUT))
}

/// Children per node of the tree above the blocks.
const FANOUT: usize = 16;

/// A level this short is folded straight into the root.
const TOP: usize = 2 * FANOUT;

/// Point-update tree over blocks of pairs that keeps max and min of V at
/// the root. Level 0 holds one summary per block, each level above
/// summarises [`FANOUT`] nodes of the one below, and the root folds the last
/// level (at most [`TOP`] nodes).
///
/// Wide and shallow rather than binary (see the module docs): an update is
/// one block scan and one 16-node fold per level, and the evicted and
/// inserted values share the folds their paths have in common.
#[derive(Debug, Clone)]
struct PrefixTree {
    /// Every level but the last is padded with empty summaries to a
    /// multiple of [`FANOUT`], so each fold has a fixed length.
    levels: Vec<Vec<Summary>>,
    root: Summary,
    /// Blocks whose steps changed since the last [`flush`](Self::flush),
    /// one bit each, so that a block is listed once in `marked`.
    dirty: Vec<u64>,
    /// Those blocks, in the order they were first marked. A list rather
    /// than a scan of the bits: a push that settles at once (two blocks)
    /// must not pay for every word at k = 50,000.
    marked: Vec<usize>,
    /// Scratch list of changed nodes, kept to avoid allocating per flush.
    parents: Vec<usize>,
}

impl PrefixTree {
    fn build(steps: &[i64]) -> Self {
        let blocks = steps.len() / (2 * BLOCK_PAIRS);
        let mut level = padded(blocks);
        level.extend((0..blocks).map(|b| block_summary(steps, b)));
        let mut levels = Vec::new();
        while level.len() > TOP {
            level.resize(level.len().next_multiple_of(FANOUT), Summary::default());
            let groups = level.as_chunks::<FANOUT>().0;
            let mut parents = padded(groups.len());
            parents.extend(groups.iter().map(|group| fold(group)));
            levels.push(level);
            level = parents;
        }
        let root = fold(&level);
        levels.push(level);
        Self {
            levels,
            root,
            dirty: vec![0; blocks.div_ceil(64)],
            marked: Vec::new(),
            parents: Vec::new(),
        }
    }

    /// Notes that the steps of `pair` changed; the root is stale until the
    /// next [`flush`](Self::flush).
    fn mark(&mut self, pair: usize) {
        let block = pair / BLOCK_PAIRS;
        let (word, bit) = (block / 64, 1u64 << (block % 64));
        if self.dirty[word] & bit == 0 {
            self.dirty[word] |= bit;
            self.marked.push(block);
        }
    }

    /// Whether the root is stale.
    fn pending(&self) -> bool {
        !self.marked.is_empty()
    }

    /// The blocks marked since the last flush, in ascending order, read
    /// from the bits: no sort, O(words + marked blocks).
    fn marked_ascending(&self) -> impl Iterator<Item = usize> + '_ {
        self.dirty.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + bit
                })
            })
        })
    }

    /// Rescans every changed block once and refolds the nodes above them,
    /// each shared node once, however many changes it saw.
    fn flush(&mut self, steps: &[i64]) {
        if !self.pending() {
            return;
        }
        let mut nodes = std::mem::take(&mut self.marked);
        let mut parents = std::mem::take(&mut self.parents);
        // A few blocks (a push read at once) sort in no time; many (a
        // window settled after hundreds of pushes) are read off the bits.
        if nodes.len() <= 8 {
            nodes.sort_unstable();
        } else {
            nodes.clear();
            nodes.extend(self.marked_ascending());
        }
        for &block in &nodes {
            self.dirty[block / 64] = 0;
            self.levels[0][block] = block_summary(steps, block);
        }
        for l in 1..self.levels.len() {
            parents.clear();
            for &node in &nodes {
                let parent = node / FANOUT;
                if parents.last() != Some(&parent) {
                    parents.push(parent);
                }
            }
            let (below, above) = self.levels.split_at_mut(l);
            let groups = below[l - 1].as_chunks::<FANOUT>().0;
            for &parent in &parents {
                above[0][parent] = fold(&groups[parent]);
            }
            std::mem::swap(&mut nodes, &mut parents);
        }
        self.root = self
            .levels
            .last()
            .map_or_else(Summary::default, |top| fold(top));
        nodes.clear();
        parents.clear();
        (self.marked, self.parents) = (nodes, parents);
    }

    fn heap_bytes(&self) -> usize {
        let nodes: usize = self.levels.iter().map(Vec::capacity).sum();
        let changed = self.marked.capacity() + self.parents.capacity();
        nodes * size_of::<Summary>()
            + self.levels.capacity() * size_of::<Vec<Summary>>()
            + self.dirty.capacity() * size_of::<u64>()
            + changed * size_of::<usize>()
    }
}

/// A window over one feature's values, compared with a shared reference
/// after every event.
///
/// As a count window, drive it with [`push`](Self::push): once it holds
/// `capacity` values each push evicts the oldest and D is read from the tree
/// in O(1). As an event-time window, use [`insert`](Self::insert) and
/// [`pop_oldest`](Self::pop_oldest); whenever the length differs from
/// `capacity`, reading D costs O(k).
///
/// Serializes as a [`SlidingKsState`] (capacity and raw values); restore
/// with [`from_state`](Self::from_state) and the same reference.
#[derive(Clone)]
pub struct SlidingKs {
    reference: Arc<KsReference>,
    /// n for the tree: the count window's length once full.
    capacity: usize,
    /// Raw values, oldest first: needed to rebuild after a baseline swap and
    /// to checkpoint.
    values: VecDeque<f64>,
    /// The slot of each value in `values`, so eviction skips the search.
    slots: VecDeque<u32>,
    /// a_s = m·w_s − n·l_s per slot (n = capacity), padded like the
    /// reference's pairs. Keeping the steps rather than the counts w_s
    /// takes the multiplications out of every block scan; the counts are
    /// never needed on their own.
    steps: Vec<i64>,
    tree: PrefixTree,
    /// n·m·D⁺ and n·m·D⁻ when the tree was last settled on a full window;
    /// `None` when the length changed since.
    settled: Option<(u64, u64)>,
    /// A bound on n·m·D when `moves` was last reset, and the pushes since
    /// that moved a step: each moves every V(s) by at most m, so D stays
    /// within `bound + m·moves` (see
    /// [`d_scaled_at_most`](Self::d_scaled_at_most)).
    bound: u64,
    moves: u64,
    /// Per block of the tree, values inserted into it and evicted from it
    /// since the last settle (non-zero only in blocks the tree has marked):
    /// what [`tighten`](Self::tighten) bounds the drift of V with.
    since_settle: Vec<[u32; 2]>,
}

impl fmt::Debug for SlidingKs {
    // The steps and the tree are derived and large; show what identifies
    // the window instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlidingKs")
            .field("capacity", &self.capacity)
            .field("len", &self.values.len())
            .field("reference_len", &self.reference.size())
            .field("reference_distinct", &self.reference.distinct())
            .finish_non_exhaustive()
    }
}

/// The intrinsic state of a [`SlidingKs`]: what a checkpoint stores. The
/// reference is stored once elsewhere and the steps and tree are rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlidingKsState {
    /// The count window's length once full.
    pub capacity: usize,
    /// Raw values, oldest first.
    pub values: Vec<f64>,
}

/// Borrowed twin of [`SlidingKsState`], so serializing a window copies
/// nothing.
#[derive(Serialize)]
struct StateView<'a> {
    capacity: usize,
    values: &'a VecDeque<f64>,
}

impl Serialize for SlidingKs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StateView {
            capacity: self.capacity,
            values: &self.values,
        }
        .serialize(serializer)
    }
}

impl SlidingKs {
    /// An empty window of `capacity` values against `reference`. Fails if
    /// the capacity is zero or n·m exceeds 2^53.
    pub fn new(reference: Arc<KsReference>, capacity: usize) -> Result<Self, StatsError> {
        check_scale(capacity, &reference)?;
        // Empty window: V(s) = −n·L(s), a step of −n·l_p at each value.
        let n = capacity as i64;
        let steps: Vec<i64> = (reference.pair_counts().iter())
            .flat_map(|&count| [-n * i64::from(count), 0])
            .collect();
        Ok(Self {
            tree: PrefixTree::build(&steps),
            steps,
            settled: None,
            bound: u64::MAX,
            moves: 0,
            since_settle: vec![[0; 2]; reference.pair_counts().len() / BLOCK_PAIRS],
            capacity,
            values: VecDeque::with_capacity(capacity),
            slots: VecDeque::with_capacity(capacity),
            reference,
        })
    }

    /// Restores a window from raw values (oldest first), e.g. from a
    /// checkpoint. More than `capacity` values is accepted: event-time
    /// windows can be longer than their nominal capacity.
    pub fn from_values(
        reference: Arc<KsReference>,
        capacity: usize,
        values: &[f64],
    ) -> Result<Self, StatsError> {
        if !values.is_empty() {
            check_sample("window", values)?;
        }
        let mut window = Self::new(reference, capacity)?;
        check_len(values.len(), window.reference.size())?;
        window.load(values.iter().copied());
        Ok(window)
    }

    /// Restores a window from its serialized state.
    pub fn from_state(
        reference: Arc<KsReference>,
        state: &SlidingKsState,
    ) -> Result<Self, StatsError> {
        Self::from_values(reference, state.capacity, &state.values)
    }

    /// The window's intrinsic state, for a checkpoint.
    pub fn state(&self) -> SlidingKsState {
        SlidingKsState {
            capacity: self.capacity,
            values: self.values.iter().copied().collect(),
        }
    }

    /// Adds a value; if the window already holds `capacity` values (or
    /// more, after [`insert`](Self::insert)), first evicts the oldest and
    /// returns it, so the length does not change. NaN and ±∞ are rejected
    /// with an error and leave the window unchanged. The tree is settled,
    /// so D reads in O(1) on a full window.
    pub fn push(&mut self, x: f64) -> Result<Option<f64>, StatsError> {
        let evicted = self.push_deferred(x)?;
        self.settle();
        Ok(evicted)
    }

    /// [`push`](Self::push) without settling the tree: for a caller that
    /// reads D only when [`d_scaled_at_most`](Self::d_scaled_at_most)
    /// reaches its threshold, and calls [`settle`](Self::settle) first.
    pub fn push_deferred(&mut self, x: f64) -> Result<Option<f64>, StatsError> {
        self.check_value(x)?;
        let slot = self.reference.slot(x);
        if self.values.len() < self.capacity {
            self.add(x, slot);
            return Ok(None);
        }

        let Some((old, old_slot)) = self.take_oldest() else {
            // Unreachable: a full window has an oldest value (capacity ≥ 1).
            self.add(x, slot);
            return Ok(None);
        };
        self.values.push_back(x);
        self.slots.push_back(slot as u32);
        // A value replaced by one in the same slot changes nothing: common
        // with tied data, and free to skip.
        if old_slot != slot {
            let m = self.weight();
            self.steps[old_slot] -= m;
            self.steps[slot] += m;
            self.tree.mark(old_slot / 2);
            self.tree.mark(slot / 2);
            self.moves += 1;
            let count = |n: &mut u32| *n = n.saturating_add(1);
            count(&mut self.since_settle[slot / 2 / BLOCK_PAIRS][0]);
            count(&mut self.since_settle[old_slot / 2 / BLOCK_PAIRS][1]);
        }
        Ok(Some(old))
    }

    /// Adds a value without evicting anything (for event-time windows). NaN
    /// and ±∞ are rejected and leave the window unchanged.
    pub fn insert(&mut self, x: f64) -> Result<(), StatsError> {
        self.check_value(x)?;
        check_len(self.values.len() + 1, self.reference.size())?;
        let slot = self.reference.slot(x);
        self.add(x, slot);
        self.settle();
        Ok(())
    }

    /// Evicts and returns the oldest value, if any.
    pub fn pop_oldest(&mut self) -> Option<f64> {
        let (old, slot) = self.take_oldest()?;
        self.steps[slot] -= self.weight();
        self.tree.mark(slot / 2);
        self.settle();
        Some(old)
    }

    /// Number of values in the window.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the window holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The count window's length once full; D is O(1) at this length.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the window holds at least `capacity` values.
    pub fn is_full(&self) -> bool {
        self.values.len() >= self.capacity
    }

    /// The window's values, oldest first.
    pub fn values(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    /// The reference the window is compared with.
    pub fn reference(&self) -> &Arc<KsReference> {
        &self.reference
    }

    /// Brings the prefix tree up to date with the pushes since the last
    /// call, rescanning each changed block once: after it, reading D on a
    /// full window is O(1). Pushes only mark what they change, so a caller
    /// that can decide without D (see
    /// [`d_scaled_at_most`](Self::d_scaled_at_most)) pays for the tree only
    /// when it reads.
    pub fn settle(&mut self) {
        for &block in &self.tree.marked {
            self.since_settle[block] = [0; 2];
        }
        self.tree.flush(&self.steps);
        self.moves = 0;
        self.settled = (self.values.len() == self.capacity).then(|| {
            let root = self.tree.root;
            (root.max.unsigned_abs(), root.min.unsigned_abs())
        });
        self.bound = self
            .settled
            .map_or(u64::MAX, |(plus, minus)| plus.max(minus));
    }

    /// An upper bound on n·m·D for a full window, without reading it: a
    /// bound at the last [`settle`](Self::settle) or
    /// [`tighten`](Self::tighten) plus m per push since. A push adds m to
    /// V(s) from the new value's slot on and takes m away from the evicted
    /// one's on, so every V(s), and hence max |V|, moves by at most m. A
    /// monitor whose threshold is above the bound knows the verdict exactly
    /// without the statistic. `u64::MAX` when the window is not full or
    /// its length changed since the last settle.
    pub fn d_scaled_at_most(&self) -> u64 {
        if self.settled.is_none() || self.values.len() != self.capacity {
            return u64::MAX;
        }
        self.bound
            .saturating_add(self.moves.saturating_mul(self.weight() as u64))
    }

    /// Tightens [`d_scaled_at_most`](Self::d_scaled_at_most) without
    /// settling, in O(changed blocks). Since the last settle V(s) moved by m
    /// times (values inserted at or below s) − (values evicted at or below
    /// s); within a block that is at most the net count before the block
    /// plus the block's insertions (or, downwards, its evictions). Pushes of
    /// values from the baseline's distribution mostly cancel, so this grows
    /// like the square root of the pushes where the plain bound grows
    /// linearly, and a monitor settles many times less often.
    pub fn tighten(&mut self) {
        let Some((plus, minus)) = self.settled else {
            return;
        };
        let (mut net, mut up, mut down) = (0i64, 0i64, 0i64);
        for block in self.tree.marked_ascending() {
            let [inserted, evicted] = self.since_settle[block].map(i64::from);
            up = up.max(net + inserted);
            down = down.max(evicted - net);
            net += inserted - evicted;
        }
        let m = self.weight() as u64;
        let plus = plus.saturating_add(m.saturating_mul(up as u64));
        let minus = minus.saturating_add(m.saturating_mul(down as u64));
        self.bound = self.d_scaled_at_most().min(plus.max(minus));
        self.moves = 0;
    }

    /// D⁺ and D⁻ scaled by n·m, n being the current length. O(1) when the
    /// length equals the capacity and the tree is settled, O(k) otherwise.
    pub fn extremes(&self) -> KsExtremes {
        let n = self.values.len();
        let summary = if n == self.capacity && !self.tree.pending() {
            self.tree.root
        } else {
            let shift = self.capacity as i64 - n as i64;
            scan_reweighted(&self.steps, self.reference.pair_counts(), shift)
        };
        KsExtremes {
            d_plus_scaled: summary.max.unsigned_abs(),
            d_minus_scaled: summary.min.unsigned_abs(),
            window_len: n as u64,
            reference_len: self.reference.size(),
        }
    }

    /// n·m·D, n being the current length.
    pub fn d_scaled(&self) -> u64 {
        self.extremes().d_scaled()
    }

    /// n·m·max(F_W − F_B).
    pub fn d_plus_scaled(&self) -> u64 {
        self.extremes().d_plus_scaled
    }

    /// n·m·max(F_B − F_W).
    pub fn d_minus_scaled(&self) -> u64 {
        self.extremes().d_minus_scaled
    }

    /// D ∈ [0, 1]; 0 for an empty window.
    pub fn statistic(&self) -> f64 {
        self.extremes().statistic()
    }

    /// Swaps the baseline and rebuilds the slots, steps and tree from the
    /// raw values. On error the window keeps its old reference.
    pub fn rebase(&mut self, reference: Arc<KsReference>) -> Result<(), StatsError> {
        let mut rebuilt = Self::new(reference, self.capacity)?;
        check_len(self.values.len(), rebuilt.reference.size())?;
        rebuilt.load(self.values.iter().copied());
        *self = rebuilt;
        Ok(())
    }

    /// Bytes this window owns (struct and heap), excluding the shared
    /// reference; add [`KsReference::heap_bytes`] for a feature's total.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.values.capacity() * size_of::<f64>()
            + self.slots.capacity() * size_of::<u32>()
            + self.steps.capacity() * size_of::<i64>()
            + self.tree.heap_bytes()
            + self.since_settle.capacity() * size_of::<[u32; 2]>()
    }

    /// Adds values to the steps and builds the tree once, rather than
    /// refreshing it per value.
    fn load(&mut self, values: impl Iterator<Item = f64>) {
        let m = self.weight();
        for x in values {
            let slot = self.reference.slot(x);
            self.values.push_back(x);
            self.slots.push_back(slot as u32);
            self.steps[slot] += m;
        }
        self.tree = PrefixTree::build(&self.steps);
        self.settled = None;
    }

    fn add(&mut self, x: f64, slot: usize) {
        self.values.push_back(x);
        self.slots.push_back(slot as u32);
        self.steps[slot] += self.weight();
        self.tree.mark(slot / 2);
        self.settled = None;
    }

    fn take_oldest(&mut self) -> Option<(f64, usize)> {
        let old = self.values.pop_front()?;
        let slot = self.slots.pop_front()? as usize;
        Some((old, slot))
    }

    /// m: what one window value adds to V at and after its slot.
    fn weight(&self) -> i64 {
        self.reference.size() as i64
    }

    fn check_value(&self, x: f64) -> Result<(), StatsError> {
        if x.is_finite() {
            return Ok(());
        }
        Err(StatsError::NonFinite {
            sample: "window",
            index: self.values.len(),
            value: x,
        })
    }
}

/// Capacity must be positive and n·m small enough for exact arithmetic.
fn check_scale(capacity: usize, reference: &KsReference) -> Result<(), StatsError> {
    if capacity == 0 {
        return Err(StatsError::InvalidArgument {
            name: "capacity",
            reason: "must be at least 1".to_owned(),
        });
    }
    check_len(capacity, reference.size())
}

/// Any window length times m must stay within [`MAX_SCALE`], and a slot
/// count within `u32`.
fn check_len(len: usize, m: u64) -> Result<(), StatsError> {
    let fits = (len as u64)
        .checked_mul(m)
        .is_some_and(|scale| scale <= MAX_SCALE)
        && len <= u32::MAX as usize;
    if fits {
        return Ok(());
    }
    Err(StatsError::InvalidArgument {
        name: "window length",
        reason: format!("{len} values against a baseline of {m} exceeds n·m ≤ 2^53"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_core::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// From-scratch oracle by sort and merge, independent of slots and
    /// trees: (n·m·D⁺, n·m·D⁻) with `first` as the first sample.
    fn scratch(first: &[f64], second: &[f64]) -> (u64, u64) {
        let mut a = first.to_vec();
        let mut b = second.to_vec();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (n, m) = (a.len() as i64, b.len() as i64);
        let (mut i, mut j, mut hi, mut lo) = (0, 0, 0i64, 0i64);
        while i < a.len() || j < b.len() {
            let x = match (a.get(i), b.get(j)) {
                (Some(&p), Some(&q)) => p.min(q),
                (Some(&p), None) => p,
                (None, Some(&q)) => q,
                (None, None) => break,
            };
            while a.get(i).is_some_and(|&v| v <= x) {
                i += 1;
            }
            while b.get(j).is_some_and(|&v| v <= x) {
                j += 1;
            }
            let v = m * i as i64 - n * j as i64;
            hi = hi.max(v);
            lo = lo.min(v);
        }
        (hi as u64, lo.unsigned_abs())
    }

    fn reference(sample: &[f64]) -> Arc<KsReference> {
        Arc::new(KsReference::new(sample).expect("valid baseline"))
    }

    fn assert_matches(window: &SlidingKs, baseline: &[f64]) {
        let model: Vec<f64> = window.values().collect();
        let got = window.extremes();
        let (plus, minus) = scratch(&model, baseline);
        assert_eq!((got.d_plus_scaled, got.d_minus_scaled), (plus, minus));
        assert_eq!(got.window_len, model.len() as u64);
        assert!((0.0..=1.0).contains(&window.statistic()));
    }

    /// Settles the tree and checks that the bound held before it and that
    /// the settled tree reads the same exact value as a scan.
    fn settle_and_check(window: &mut SlidingKs, baseline: &[f64]) {
        let bound = window.d_scaled_at_most();
        let scanned = window.extremes();
        window.tighten();
        let tight = window.d_scaled_at_most();
        assert!(tight <= bound, "tightening loosened {bound} to {tight}");
        assert_eq!(window.extremes(), scanned);
        window.settle();
        assert_eq!(window.extremes(), scanned);
        assert!(
            scanned.d_scaled() <= tight,
            "{scanned:?} above bound {tight}"
        );
        assert_matches(window, baseline);
    }

    #[test]
    fn slots_follow_the_design() {
        let r = KsReference::new(&[2.0, 1.0, 2.0, 4.0]).expect("valid");
        assert_eq!(r.values(), &[1.0, 2.0, 4.0]);
        assert_eq!(r.multiplicities(), &[1, 2, 1]);
        assert_eq!(r.size(), 4);
        let expected = [
            (0.5, 1),
            (1.0, 2),
            (1.5, 3),
            (2.0, 4),
            (3.0, 5),
            (4.0, 6),
            (9.0, 7),
        ];
        for (x, slot) in expected {
            assert_eq!(r.slot(x), slot, "slot of {x}");
        }
        assert_eq!(r.slot_count(), 8);
        assert_eq!(r.slot(-0.0), r.slot(0.0));
    }

    #[test]
    fn slot_search_matches_binary_search() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for distinct in [1, 15, 16, 17, 32, 33, 255, 256, 257, 600, 5_000] {
            let sample: Vec<f64> = (0..distinct).map(|i| f64::from(i as u32) * 0.5).collect();
            let r = KsReference::new(&sample).expect("valid");
            let span = distinct as f64 * 0.5 + 2.0;
            let probes = (0..400).map(|_| (rng.next_u64() % 1_000) as f64 / 1_000.0 * span - 1.0);
            let exact = sample.iter().step_by(7).copied();
            for x in probes.chain(exact) {
                let below = sample.partition_point(|&u| u < x);
                let naive = if sample.get(below) == Some(&x) {
                    2 * below + 2
                } else {
                    2 * below + 1
                };
                assert_eq!(r.slot(x), naive, "k={distinct}, x={x}");
            }
        }
    }

    #[test]
    fn reference_rejects_bad_samples() {
        assert_eq!(
            KsReference::new(&[]),
            Err(StatsError::EmptySample { sample: "baseline" })
        );
        let err = KsReference::new(&[1.0, f64::INFINITY]).expect_err("inf");
        assert!(matches!(err, StatsError::NonFinite { index: 1, .. }));
    }

    #[test]
    fn reference_round_trips_and_validates() {
        let r = KsReference::new(&[3.0, 1.0, 3.0]).expect("valid");
        let json = serde_json::to_string(&r).expect("serializes");
        assert_eq!(json, r#"{"values":[1.0,3.0],"counts":[1,2]}"#);
        let back: KsReference = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, r);

        let unsorted = r#"{"values":[3.0,1.0],"counts":[1,2]}"#;
        assert!(serde_json::from_str::<KsReference>(unsorted).is_err());
        let zero = r#"{"values":[1.0,3.0],"counts":[0,2]}"#;
        assert!(serde_json::from_str::<KsReference>(zero).is_err());
    }

    #[test]
    fn a_worked_example() {
        // F_W − F_B reaches 2/3 at x = 2 (2/3 − 0) and again at x = 3
        // (1 − 1/3); F_B never exceeds F_W.
        let baseline = [2.5, 3.5, 4.5];
        let mut w = SlidingKs::new(reference(&baseline), 3).expect("valid");
        for x in [1.0, 2.0, 3.0] {
            w.push(x).expect("finite");
        }
        assert_eq!(w.d_plus_scaled(), 6); // 3·3·(2/3)
        assert_eq!(w.d_minus_scaled(), 0);
        assert!((w.statistic() - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn non_finite_values_never_enter() {
        let mut w = SlidingKs::new(reference(&[1.0, 2.0]), 2).expect("valid");
        w.push(1.5).expect("finite");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = w.push(bad).expect_err("rejected");
            assert!(matches!(
                err,
                StatsError::NonFinite {
                    sample: "window",
                    index: 1,
                    ..
                }
            ));
            assert!(w.insert(bad).is_err());
        }
        assert_eq!(w.values().collect::<Vec<_>>(), vec![1.5]);
        assert!(SlidingKs::from_values(reference(&[1.0]), 2, &[f64::NAN]).is_err());
    }

    #[test]
    fn rejects_zero_capacity_and_oversized_scale() {
        assert!(SlidingKs::new(reference(&[1.0]), 0).is_err());
        assert!(SlidingKs::new(reference(&[1.0, 2.0]), 1 << 53).is_err());
    }

    #[test]
    fn a_feature_fits_the_memory_budget() {
        // The project's budget: window 1,000 against 5,000 distinct values,
        // reference included, within 200 KiB.
        let baseline: Vec<f64> = (0..5_000).map(f64::from).collect();
        let values: Vec<f64> = (0..1_000).map(|i| f64::from(i) * 4.9).collect();
        let w = SlidingKs::from_values(reference(&baseline), 1_000, &values).expect("valid");
        let bytes = w.memory_bytes() + w.reference().heap_bytes();
        assert!(bytes <= 200 * 1024, "{bytes} bytes");
    }

    #[test]
    fn push_evicts_oldest_once_full() {
        let mut w = SlidingKs::new(reference(&[0.0]), 2).expect("valid");
        assert_eq!(w.push(1.0), Ok(None));
        assert!(!w.is_full());
        assert_eq!(w.push(2.0), Ok(None));
        assert!(w.is_full());
        assert_eq!(w.push(3.0), Ok(Some(1.0)));
        assert_eq!(w.values().collect::<Vec<_>>(), vec![2.0, 3.0]);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let baseline = [1.0, 2.0, 2.0, 5.0];
        let shared = reference(&baseline);
        let mut w = SlidingKs::new(Arc::clone(&shared), 3).expect("valid");
        for x in [2.0, 7.0, 0.5, 2.0] {
            w.push(x).expect("finite");
        }
        let json = serde_json::to_string(&w).expect("serializes");
        assert_eq!(json, r#"{"capacity":3,"values":[7.0,0.5,2.0]}"#);
        let state: SlidingKsState = serde_json::from_str(&json).expect("deserializes");
        let back = SlidingKs::from_state(shared, &state).expect("restores");
        assert_eq!(back.state(), w.state());
        assert_eq!(back.extremes(), w.extremes());
    }

    #[test]
    fn long_continuous_stream_matches_scratch() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut uniform = move || (rng.next_u64() >> 11) as f64 * (-53f64).exp2();
        let baseline: Vec<f64> = (0..700).map(|_| uniform()).collect();
        let mut w = SlidingKs::new(reference(&baseline), 60).expect("valid");
        for step in 0..3_000 {
            // A slow shift exercises large D as well as small.
            w.push_deferred(uniform() + step as f64 * 1e-4)
                .expect("finite");
            if step % 7 == 0 {
                assert_matches(&w, &baseline);
            }
            if step % 13 == 0 {
                settle_and_check(&mut w, &baseline);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(f64),
        PushDeferred(f64),
        Insert(f64),
        Pop,
        Rebase(Vec<f64>),
        Settle,
    }

    /// Small integers tie with each other and with baseline values;
    /// continuous values fall between them.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![(0i32..6).prop_map(f64::from), -1.0f64..7.0]
    }

    fn sample() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(value(), 1..40)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => value().prop_map(Op::Push),
            6 => value().prop_map(Op::PushDeferred),
            2 => value().prop_map(Op::Insert),
            2 => Just(Op::Pop),
            1 => sample().prop_map(Op::Rebase),
            3 => Just(Op::Settle),
        ]
    }

    /// Applies `op` to the window and to a plain model of its contents.
    fn apply(w: &mut SlidingKs, model: &mut VecDeque<f64>, baseline: &mut Vec<f64>, op: Op) {
        match op {
            Op::Push(x) => {
                let expected = (model.len() >= w.capacity()).then(|| model.pop_front());
                model.push_back(x);
                assert_eq!(w.push(x), Ok(expected.flatten()));
            }
            Op::PushDeferred(x) => {
                let expected = (model.len() >= w.capacity()).then(|| model.pop_front());
                model.push_back(x);
                assert_eq!(w.push_deferred(x), Ok(expected.flatten()));
            }
            Op::Insert(x) => {
                model.push_back(x);
                assert_eq!(w.insert(x), Ok(()));
            }
            Op::Pop => assert_eq!(w.pop_oldest(), model.pop_front()),
            Op::Rebase(sample) => {
                w.rebase(reference(&sample)).expect("valid");
                *baseline = sample;
            }
            Op::Settle => settle_and_check(w, baseline),
        }
    }

    proptest! {
        #[test]
        fn incremental_equals_scratch(
            initial in sample(),
            capacity in 1usize..12,
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let mut baseline = initial;
            let mut w = SlidingKs::new(reference(&baseline), capacity).expect("valid");
            let mut model = VecDeque::new();
            for op in ops {
                apply(&mut w, &mut model, &mut baseline, op);
                prop_assert_eq!(w.values().collect::<VecDeque<_>>(), model.clone());
                assert_matches(&w, &baseline);
            }
        }

        #[test]
        fn scratch_is_symmetric_and_bounded(x in sample(), y in sample()) {
            let (xy_plus, xy_minus) = scratch(&x, &y);
            let (yx_plus, yx_minus) = scratch(&y, &x);
            prop_assert_eq!((xy_plus, xy_minus), (yx_minus, yx_plus));
            let scale = (x.len() * y.len()) as u64;
            prop_assert!(xy_plus.max(xy_minus) <= scale);
        }

        #[test]
        fn restored_window_reads_the_same(
            base in sample(),
            values in sample(),
            capacity in 1usize..12,
        ) {
            let shared = reference(&base);
            let restored = SlidingKs::from_values(Arc::clone(&shared), capacity, &values);
            let restored = restored.expect("valid");
            assert_matches(&restored, &base);
            let mut pushed = SlidingKs::new(shared, capacity).expect("valid");
            for &x in &values {
                pushed.insert(x).expect("finite");
            }
            prop_assert_eq!(restored.extremes(), pushed.extremes());
        }
    }
}
