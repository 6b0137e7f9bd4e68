//! Many short strings stored back to back in one buffer (module names, module paths), and an
//! interner over them that is dropped once the index is loaded.

use std::hash::Hasher;

use crate::fasthash::Fnv;

/// Strings in one buffer: string `i` is `text[ends[i - 1]..ends[i]]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Strs {
    text: String,
    ends: Vec<u32>,
}

impl Strs {
    /// Appends a string; returns its id.
    pub(crate) fn push(&mut self, s: &str) -> u32 {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }

    /// String `id`.
    pub(crate) fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id of `s` in strings sorted in byte order.
    pub(crate) fn find_sorted(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0u32, self.len() as u32);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).as_bytes().cmp(s.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4
    }
}

const EMPTY: u32 = u32::MAX;

/// Gives each distinct string one id in a [`Strs`].
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strs: Strs,
    /// Open addressing: string ids, `EMPTY` for a free slot.
    table: Vec<u32>,
}

fn hash(s: &str) -> usize {
    let mut h = Fnv::default();
    h.write(s.as_bytes());
    h.finish() as usize
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if (self.strs.len() + 1) * 2 > self.table.len() {
            self.rehash((self.table.len() * 2).max(64));
        }
        let mask = self.table.len() - 1;
        let mut slot = hash(s) & mask;
        loop {
            match self.table[slot] {
                EMPTY => {
                    let id = self.strs.push(s);
                    self.table[slot] = id;
                    return id;
                }
                id if self.strs.get(id) == s => return id,
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    fn rehash(&mut self, cap: usize) {
        self.table.clear();
        self.table.resize(cap, EMPTY);
        let mask = cap - 1;
        for id in 0..self.strs.len() as u32 {
            let mut slot = hash(self.strs.get(id)) & mask;
            while self.table[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.table[slot] = id;
        }
    }

    /// The strings, without the lookup table.
    pub(crate) fn into_strs(self) -> Strs {
        let mut strs = self.strs;
        strs.shrink_to_fit();
        strs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_id_per_distinct_string() {
        let mut i = Interner::default();
        let names: Vec<String> = (0..500).map(|n| format!("mod_{n}")).collect();
        let ids: Vec<u32> = names.iter().map(|n| i.intern(n)).collect();
        assert_eq!(ids, (0..500).collect::<Vec<u32>>());
        assert_eq!(i.intern("mod_7"), 7);
        assert_eq!(i.intern("new"), 500);
        let s = i.into_strs();
        assert_eq!(s.get(300), "mod_300");
        assert_eq!(s.len(), 501);
    }

    #[test]
    fn sorted_strings_are_found_by_binary_search() {
        let mut s = Strs::default();
        for n in ["", "a", "ab", "b", "ba"] {
            s.push(n);
        }
        for (id, n) in ["", "a", "ab", "b", "ba"].iter().enumerate() {
            assert_eq!(s.find_sorted(n), Some(id as u32));
        }
        assert_eq!(s.find_sorted("aa"), None);
        assert_eq!(s.find_sorted("c"), None);
    }
}
