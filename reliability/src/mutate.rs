//! Generated inputs: valid examples made at random, then broken the ways real input breaks
//! (bytes flipped, cut short, repeated, spliced, padded with the characters parsers trip on).
//! Seeded, so a figure's inputs can be made again.

use liveuser_sim::rng::Rng;

/// Bytes parsers of this service give meaning to, and some they must survive.
const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"0",
    b"ffffffffffffffff",
    b"-1",
    b"18446744073709551616",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b".",
    b"=",
    b"==",
    b"%",
    b"%zz",
    b"%00",
    b"&",
    b"=&=",
    b"+",
    b"/",
    b"_",
    b"-",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"\xf0\x9f\x98\x80",
    b"TEXT ",
    b"CLOSE ",
    b"OPEN",
    b"PING ",
    b"BINARY ",
    b"DISCONNECT",
    b"null",
    b"true",
    b"1e999",
    b"<script>",
    b"</script>",
];

pub struct Mutator {
    pub rng: Rng,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            rng: Rng::new(seed),
        }
    }

    pub fn below(&self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    pub fn chance(&self, p: f64) -> bool {
        self.rng.unit() < p
    }

    pub fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Random bytes, `len` of them.
    pub fn bytes(&self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.next_u64() as u8).collect()
    }

    /// A random string: ASCII mostly, with some characters beyond it.
    pub fn text(&self, max_len: usize) -> String {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| match self.below(20) {
                0 => *self.pick(&['é', '€', '😀', '\u{2028}', '\0', '"', '\\', '<']),
                _ => (b' ' + self.below(95) as u8) as char,
            })
            .collect()
    }

    /// `input` broken one to four times.
    pub fn mutate(&self, mut input: Vec<u8>, others: &[Vec<u8>]) -> Vec<u8> {
        for _ in 0..=self.below(4) {
            self.mutate_once(&mut input, others);
        }
        input
    }

    fn mutate_once(&self, input: &mut Vec<u8>, others: &[Vec<u8>]) {
        let at = |m: &Mutator, v: &Vec<u8>| m.below(v.len() + 1);
        match self.below(9) {
            // A bit flipped.
            0 if !input.is_empty() => {
                let i = self.below(input.len());
                input[i] ^= 1 << self.below(8);
            }
            // A byte replaced.
            1 if !input.is_empty() => {
                let i = self.below(input.len());
                input[i] = self.rng.next_u64() as u8;
            }
            // Cut short.
            2 => input.truncate(at(self, input)),
            // A range removed.
            3 if !input.is_empty() => {
                let start = self.below(input.len());
                let end = (start + 1 + self.below(16)).min(input.len());
                input.drain(start..end);
            }
            // An interesting token inserted.
            4 => {
                let i = at(self, input);
                let token = self.pick(INTERESTING);
                input.splice(i..i, token.iter().copied());
            }
            // A range repeated (up to past the size limits).
            5 if !input.is_empty() => {
                let start = self.below(input.len());
                let end = (start + 1 + self.below(32)).min(input.len());
                let chunk = input[start..end].to_vec();
                let times = if self.chance(0.1) {
                    3000
                } else {
                    1 + self.below(4)
                };
                for _ in 0..times {
                    input.splice(end..end, chunk.iter().copied());
                }
            }
            // Spliced with another example.
            6 if !others.is_empty() => {
                let other = self.pick(others);
                let cut = at(self, input);
                let from = self.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            // Random bytes inserted.
            7 => {
                let i = at(self, input);
                let noise = self.bytes(1 + self.below(8));
                input.splice(i..i, noise);
            }
            // A number replaced by an extreme one.
            _ => {
                if let Some(i) = input.iter().position(|b| b.is_ascii_digit()) {
                    const EXTREMES: [&[u8]; 3] = [b"99999999999999999999", b"0", b"4294967296"];
                    let big = self.pick(&EXTREMES);
                    input.splice(i..i + 1, big.iter().copied());
                }
            }
        }
    }
}
