//! Recording bodies for `DownloadRecording`: the stored bytes of a
//! [`SimRecording`](super::SimRecording), or synthetic WAV audio generated on
//! the fly, served as a stream of chunks that can be broken off after a
//! number of bytes.
//!
//! Synthetic audio is never held whole in memory: every chunk is either the
//! 44-byte header or a slice of one shared, precomputed block of samples, so a
//! 100 MB download costs the simulator a few kilobytes.

use std::io;
use std::sync::LazyLock;

use axum::body::{Body, Bytes};
use futures_util::stream;

/// Largest chunk the body stream yields.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Size of the canonical PCM WAV header (`RIFF` + `fmt ` + `data` chunk heads).
pub(crate) const WAV_HEADER_LEN: u64 = 44;

/// Sample rate of every WAV the simulator makes (8 kHz, mono, 16-bit PCM).
const SAMPLE_RATE: u32 = 8000;

/// Times a failing body yields to the server before its error (see
/// [`Audio::into_body`]).
const FLUSH_YIELDS: usize = 4;

/// Bytes in one period of the synthetic signal: a 400 Hz triangle wave at
/// 8 kHz is 20 samples of 2 bytes.
const PERIOD_BYTES: usize = 40;

/// `CHUNK + PERIOD_BYTES` bytes of the synthetic signal, starting at phase 0:
/// any chunk of samples is a zero-copy slice of it, whatever its phase.
static PATTERN: LazyLock<Bytes> =
    LazyLock::new(|| (0..CHUNK + PERIOD_BYTES).map(sample_byte).collect());

/// Byte `index` of the synthetic sample data (little-endian 16-bit samples
/// of a triangle wave between -8000 and +8000).
fn sample_byte(index: usize) -> u8 {
    let phase = i32::try_from((index / 2) % (PERIOD_BYTES / 2)).unwrap_or(0);
    let sample = if phase < 10 {
        -8000 + phase * 1600
    } else {
        8000 - (phase - 10) * 1600
    };
    let bytes = i16::try_from(sample).unwrap_or(0).to_le_bytes();
    bytes[index % 2]
}

/// The 44-byte header of an 8 kHz mono 16-bit PCM WAV whose `data` chunk
/// holds `data_len` bytes (`RIFF` size `36 + data_len`).
pub(crate) fn wav_header(data_len: u32) -> [u8; 44] {
    let mut out = [0u8; 44];
    let fields: [&[u8]; 12] = [
        b"RIFF",
        &data_len.saturating_add(36).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(), // fmt chunk size
        &1u16.to_le_bytes(),  // PCM
        &1u16.to_le_bytes(),  // mono
        &SAMPLE_RATE.to_le_bytes(),
        &(SAMPLE_RATE * 2).to_le_bytes(), // byte rate
        &2u16.to_le_bytes(),              // block align
        &16u16.to_le_bytes(),             // bits per sample
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    out
}

/// The body of one recording.
#[derive(Clone, Debug)]
pub(crate) enum Audio {
    /// Bytes scripted with the recording (shared, never copied).
    Stored(Bytes),
    /// Exactly `len` bytes: a WAV header sized for `len`, then generated
    /// samples (see [`synthetic_wav`]).
    Synthetic {
        /// Total body length, header included.
        len: u64,
    },
}

impl Audio {
    /// Total body length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Stored(bytes) => bytes.len() as u64,
            Self::Synthetic { len } => *len,
        }
    }

    /// Up to `max` (≤ [`CHUNK`]) bytes starting at `pos` (< `len`). Never
    /// empty; may be shorter than `max` (the header is its own chunk).
    fn chunk(&self, pos: u64, max: usize) -> Bytes {
        let start = usize::try_from(pos).unwrap_or(usize::MAX);
        match self {
            Self::Stored(bytes) => {
                let end = start.saturating_add(max).min(bytes.len());
                bytes.slice(start..end)
            }
            Self::Synthetic { len } if pos < WAV_HEADER_LEN => {
                let data_len = len.saturating_sub(WAV_HEADER_LEN);
                let header = wav_header(u32::try_from(data_len).unwrap_or(u32::MAX - 36));
                let end = (start + max).min(header.len());
                Bytes::copy_from_slice(&header[start..end])
            }
            Self::Synthetic { .. } => {
                let data_pos = pos - WAV_HEADER_LEN;
                let phase = usize::try_from(data_pos % PERIOD_BYTES as u64).unwrap_or(0);
                PATTERN.slice(phase..phase + max.min(CHUNK))
            }
        }
    }

    /// A streaming body. With `fail_after = Some(n)` it yields the first `n`
    /// bytes (at most the whole body) and then an error, which makes the
    /// server abort the connection: the client sees a broken body, never a
    /// clean end. Before the error the stream lets the server flush what it
    /// buffered, so the client gets all `n` bytes unless the socket is still
    /// full then (a client reading slower than the loopback can carry), in
    /// which case it gets fewer.
    pub(crate) fn into_body(self, fail_after: Option<u64>) -> Body {
        let len = self.len();
        let end = fail_after.map_or(len, |n| n.min(len));
        let chunks = stream::unfold(Some((self, 0u64)), move |state| async move {
            let (audio, pos) = state?;
            if pos < end {
                let max = usize::try_from(end - pos).map_or(CHUNK, |left| left.min(CHUNK));
                let chunk = audio.chunk(pos, max);
                let next = pos + chunk.len() as u64;
                return Some((Ok(chunk), Some((audio, next))));
            }
            let n = fail_after?;
            // hyper drops whatever it still buffers when the body errors:
            // pending a few times first lets it flush the head and the last
            // chunks to the socket (each yield is followed by a flush).
            for _ in 0..FLUSH_YIELDS {
                tokio::task::yield_now().await;
            }
            let err = io::Error::other(format!(
                "download broken off after {n} bytes (injected by the simulator)"
            ));
            Some((Err(err), None))
        });
        Body::from_stream(chunks)
    }
}

/// The exact bytes [`ThreeCxSim::set_synthetic_audio`](super::ThreeCxSim::set_synthetic_audio)
/// makes `DownloadRecording` serve for `len`: a 44-byte WAV header (8 kHz mono
/// 16-bit PCM, `data` size `len - 44`, `RIFF` size `len - 8`) followed by a
/// deterministic 400 Hz triangle wave. Below 44 bytes it is a prefix of the
/// header of an empty WAV. Meant for comparing small downloads in tests.
pub fn synthetic_wav(len: u64) -> Vec<u8> {
    let audio = Audio::Synthetic { len };
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while (out.len() as u64) < len {
        let left = len - out.len() as u64;
        let max = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
        out.extend_from_slice(&audio.chunk(out.len() as u64, max));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_match_the_length() {
        let wav = synthetic_wav(1044);
        assert_eq!(wav.len(), 1044);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[4..8].try_into().unwrap()), 1036);
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8000);
        assert_eq!(&wav[36..40], b"data");
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 1000);
    }

    #[test]
    fn samples_do_not_depend_on_chunk_boundaries() {
        let len = 3 * CHUNK as u64 + 7;
        let wav = synthetic_wav(len);
        let direct: Vec<u8> = (0..wav.len() - 44).map(sample_byte).collect();
        assert_eq!(&wav[44..], direct.as_slice());
        let sample = |i: usize| i16::from_le_bytes([wav[44 + 2 * i], wav[45 + 2 * i]]);
        assert_eq!((sample(0), sample(10), sample(20)), (-8000, 8000, -8000));
    }

    #[test]
    fn short_lengths_are_header_prefixes() {
        assert_eq!(synthetic_wav(0), Vec::<u8>::new());
        assert_eq!(synthetic_wav(4), b"RIFF");
        assert_eq!(synthetic_wav(44), wav_header(0));
    }
}
