//! The byte stream of `skydeck ssh` once its HTTP request was upgraded:
//! frames of `[kind: u8][length: u32, big-endian][payload]`, in both
//! directions. The client sends input, its end and terminal resizes; the
//! server sends stdout, stderr, then the exit code (or an error) last.

/// The path of the endpoint.
pub const PATH: &str = "/skydeck/ssh";
/// The `Upgrade` protocol name the client asks for and the server grants.
pub const PROTOCOL: &str = "skydeck-session";
/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdin(Vec<u8>),
    StdinEof,
    Resize {
        cols: u16,
        rows: u16,
    },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    /// The session could not go on; the message says why.
    Error(String),
}

const STDIN: u8 = 1;
const STDIN_EOF: u8 = 2;
const RESIZE: u8 = 3;
const STDOUT: u8 = 11;
const STDERR: u8 = 12;
const EXIT: u8 = 13;
const ERROR: u8 = 14;

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, std::borrow::Cow<'_, [u8]>) = match self {
            Self::Stdin(data) => (STDIN, data.into()),
            Self::StdinEof => (STDIN_EOF, (&[][..]).into()),
            Self::Resize { cols, rows } => {
                let mut bytes = cols.to_be_bytes().to_vec();
                bytes.extend_from_slice(&rows.to_be_bytes());
                (RESIZE, bytes.into())
            }
            Self::Stdout(data) => (STDOUT, data.into()),
            Self::Stderr(data) => (STDERR, data.into()),
            Self::Exit(code) => (EXIT, code.to_be_bytes().to_vec().into()),
            Self::Error(message) => (ERROR, message.as_bytes().into()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// Collects bytes as they arrive and hands out whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` until one arrived; an error for a
    /// stream that is not this protocol (nothing after it can be read).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!(
                "a frame of {len} bytes is over the limit of {MAX_FRAME}"
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
        let fixed = |n: usize| {
            if payload.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "frame kind {kind} has {} bytes, not {n}",
                    payload.len()
                ))
            }
        };
        let frame = match kind {
            STDIN => Frame::Stdin(payload),
            STDIN_EOF => Frame::StdinEof,
            RESIZE => {
                fixed(4)?;
                Frame::Resize {
                    cols: u16::from_be_bytes([payload[0], payload[1]]),
                    rows: u16::from_be_bytes([payload[2], payload[3]]),
                }
            }
            STDOUT => Frame::Stdout(payload),
            STDERR => Frame::Stderr(payload),
            EXIT => {
                fixed(4)?;
                Frame::Exit(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            }
            ERROR => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
            other => return Err(format!("unknown frame kind {other}")),
        };
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_being_split_anywhere() {
        let frames = vec![
            Frame::Stdin(b"hi\n".to_vec()),
            Frame::StdinEof,
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Stdout(vec![0, 255, 10]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(-3),
            Frame::Error("gone".to_owned()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for cut in 0..bytes.len() {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                decoder.push(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    got.push(frame);
                }
            }
            assert_eq!(got, frames, "cut at {cut}");
        }
    }

    #[test]
    fn a_stream_of_another_protocol_is_refused() {
        let mut decoder = Decoder::default();
        decoder.push(b"GET / HTTP/1.1\r\n");
        assert!(decoder.next_frame().is_err());
    }
}
