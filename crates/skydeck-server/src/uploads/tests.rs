use super::*;
use zip::write::SimpleFileOptions;

/// One zip member: a directory (name ends in `/`), a file, or a link.
enum Member<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}
use Member::{Dir, File, Link};

fn zip_bytes(members: &[Member]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for member in members {
        match member {
            Dir(name) => writer.add_directory(*name, deflated).unwrap(),
            File(name, content) => {
                writer.start_file(*name, deflated).unwrap();
                writer.write_all(content).unwrap();
            }
            Link(name, target) => writer.add_symlink(*name, *target, deflated).unwrap(),
        }
    }
    writer.finish().unwrap().into_inner()
}

fn zip_of(members: &[Member]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), zip_bytes(members)).unwrap();
    file
}

/// The id the official client gives these members.
fn id_of(members: &[Member]) -> String {
    blob_id_of(
        members
            .iter()
            .map(|m| match m {
                Dir(name) => (name.to_string(), Sha256::digest(b"").into()),
                File(name, content) => (name.to_string(), Sha256::digest(content).into()),
                Link(name, target) => (name.to_string(), Sha256::digest(target).into()),
            })
            .collect(),
    )
}

fn limits() -> Limits {
    Limits::new(1 << 20)
}

fn unpack_err(members: &[Member], limits: &Limits) -> (UploadError, tempfile::TempDir) {
    let zip = zip_of(members);
    let dest = tempfile::tempdir().unwrap();
    let err = unpack(zip.path(), &dest.path().join("files"), limits).unwrap_err();
    (err, dest)
}

#[track_caller]
fn assert_invalid(err: &UploadError, needle: &str) {
    assert!(
        matches!(err, UploadError::Invalid(_)) && err.to_string().contains(needle),
        "{needle:?} not in {err:?}"
    );
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn blob(id: &str) -> BlobId {
    BlobId::new(id).unwrap()
}

/// An `Uploads` under a fresh root, and that root.
fn uploads(limits: Limits) -> (Uploads, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    (Uploads::new(root.path().to_owned(), limits), root)
}

/// Sends `bytes` as one chunk of an upload and completes it.
fn send(
    uploads: &Uploads,
    user: &UserId,
    id: &BlobId,
    bytes: &[u8],
) -> Result<Progress, UploadError> {
    std::fs::write(uploads.chunk_path(user, id, 0).unwrap(), bytes).unwrap();
    uploads.complete(user, id, 1)
}

/// Every path under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in read_dir(&at) {
            let path = entry.path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_blob_id_is_the_official_clients_hash() {
    // hashlib over sorted (name, sha256(content)) pairs, as
    // `_compute_zip_blob_id` in sky/client/common.py computes it.
    let members = [Dir("a/"), File("a/f", b"hi"), Link("a/l", "f")];
    let zip = zip_of(&members);
    let dest = tempfile::tempdir().unwrap();
    let id = unpack(zip.path(), dest.path(), &limits()).unwrap();
    assert_eq!(
        id,
        "3f0228c37bc5f73f3411deb1fed1661dd4013222338151d4c5adb6d58b1aefc1"
    );
    assert_eq!(id, id_of(&members));
}

#[test]
fn members_land_under_the_destination() {
    let zip = zip_of(&[
        Dir("tmp/u/proj/"),
        File("tmp/u/proj/a.py", b"print(1)"),
        Link("tmp/u/proj/link", "a.py"),
        Link("tmp/u/proj/up", "../../../tmp/u/proj/a.py"),
    ]);
    let dest = tempfile::tempdir().unwrap();
    unpack(zip.path(), dest.path(), &limits()).unwrap();
    let proj = dest.path().join("tmp/u/proj");
    assert_eq!(
        std::fs::read_to_string(proj.join("a.py")).unwrap(),
        "print(1)"
    );
    assert_eq!(
        std::fs::read_link(proj.join("link")).unwrap(),
        Path::new("a.py")
    );
    assert_eq!(
        std::fs::read_to_string(proj.join("up")).unwrap(),
        "print(1)"
    );
}

#[test]
fn climbing_out_is_refused() {
    let (err, dest) = unpack_err(&[File("../../evil.txt", b"x")], &limits());
    assert_invalid(&err, "outside the upload directory");
    assert!(!dest.path().join("evil.txt").exists());
}

#[test]
fn writing_through_an_unpacked_link_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let (err, _dest) = unpack_err(
        &[Link("escape", "../.."), File("escape/owned.txt", b"x")],
        &limits(),
    );
    assert_invalid(&err, "through the symbolic link");
    assert!(!outside.path().join("owned.txt").exists());
}

#[test]
fn links_that_point_outside_the_upload_are_refused() {
    for (members, needle) in [
        (vec![Link("abs", "/etc/passwd")], "absolute path"),
        (vec![Link("a/up", "../../x")], "points outside the upload"),
        (vec![Link("up", "..")], "points outside the upload"),
        // Lexically inside, but `b` is the upload's root, so `b/..` is
        // its parent, as the kernel resolves it.
        (
            vec![Link("b", "."), Link("a", "b/..")],
            "points outside the upload",
        ),
        // Through a chain of links.
        (
            vec![Dir("d/"), Link("d/top", ".."), Link("x", "d/top/d/top/..")],
            "points outside the upload",
        ),
        (vec![Link("loop", "loop/x")], "points outside the upload"),
    ] {
        let (err, _dest) = unpack_err(&members, &limits());
        assert_invalid(&err, needle);
    }
}

#[test]
fn links_inside_the_upload_are_kept_even_if_dangling() {
    let zip = zip_of(&[
        Dir("p/sub/"),
        Link("p/sub/data", "../../q/data.bin"),
        Link("p/self", "."),
        Link("p/via", "self/sub"),
    ]);
    let dest = tempfile::tempdir().unwrap();
    unpack(zip.path(), dest.path(), &limits()).unwrap();
    assert_eq!(
        std::fs::read_link(dest.path().join("p/sub/data")).unwrap(),
        Path::new("../../q/data.bin")
    );
}

#[test]
fn content_past_the_limit_is_refused() {
    // Declared sizes are checked before anything is written.
    let limits = Limits::new(1000);
    let (err, dest) = unpack_err(
        &[File("a.bin", &[b'x'; 600]), File("b.bin", &[b'y'; 600])],
        &limits,
    );
    assert!(
        matches!(err, UploadError::TooLarge { limit: 1000 }),
        "{err}"
    );
    assert!(tree(dest.path()).is_empty(), "{:?}", tree(dest.path()));
}

#[test]
fn a_zip_bomb_is_refused_and_leaves_nothing() {
    // 64 MB of zeros deflate to about 64 KB.
    let zeros = vec![0u8; 64 << 20];
    let bytes = zip_bytes(&[File("bomb.bin", &zeros)]);
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    let (uploads, root) = uploads(Limits::new(8 << 20));
    let (alice, id) = (user("alice"), blob(&"b".repeat(64)));
    let err = send(&uploads, &alice, &id, &bytes).unwrap_err();
    assert!(matches!(err, UploadError::TooLarge { .. }), "{err}");
    assert_eq!(tree(&root.path().join("users/alice")), Vec::<String>::new());
}

/// Rewrites the uncompressed size of the only member, in its local and
/// central headers, as a forger would.
fn forge_size(mut bytes: Vec<u8>, size: u32) -> Vec<u8> {
    let find = |bytes: &[u8], signature: &[u8]| {
        bytes
            .windows(4)
            .position(|w| w == signature)
            .expect("signature")
    };
    let local = find(&bytes, b"PK\x03\x04");
    bytes[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
    let central = find(&bytes, b"PK\x01\x02");
    bytes[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    bytes
}

#[test]
fn a_member_that_lies_about_its_size_is_refused() {
    let real = zip_bytes(&[File("a.txt", &[b'x'; 100_000])]);
    for (size, needle) in [
        (10, "inflates past the 10 bytes"),
        (u32::MAX, "more than deflate can produce"),
    ] {
        let zip = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(zip.path(), forge_size(real.clone(), size)).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(zip.path(), dest.path(), &Limits::new(u64::MAX)).unwrap_err();
        assert_invalid(&err, needle);
    }
}

#[test]
fn entries_past_the_cap_are_refused_before_parsing() {
    let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let members: Vec<Member> = names.iter().map(|n| File(n, b"")).collect();
    let limits = Limits {
        max_entries: 10,
        ..Limits::new(1 << 20)
    };
    let (err, _dest) = unpack_err(&members, &limits);
    assert!(
        matches!(err, UploadError::TooManyEntries { limit: 10 }),
        "{err}"
    );
    // Names zipped twice count twice.
    let twice = [File("a", b""), File("a", b"")];
    let zip = zip_of_duplicates(&twice);
    let dest = tempfile::tempdir().unwrap();
    let one = Limits {
        max_entries: 1,
        ..Limits::new(1 << 20)
    };
    let err = unpack(zip.path(), dest.path(), &one).unwrap_err();
    assert!(
        matches!(err, UploadError::TooManyEntries { limit: 1 }),
        "{err}"
    );
    // Through an upload, the central directory's signatures are counted
    // before the zip is parsed: past the margin, it never is.
    let many: Vec<String> = (0..41).map(|i| format!("g{i}")).collect();
    let members: Vec<Member> = many.iter().map(|n| File(n, b"")).collect();
    let (uploads, root) = uploads(limits);
    let (alice, id) = (user("alice"), blob(&id_of(&members)));
    let err = send(&uploads, &alice, &id, &zip_bytes(&members)).unwrap_err();
    assert!(matches!(err, UploadError::TooManyEntries { .. }), "{err}");
    assert!(!root.path().join("users/alice").join(id.as_str()).exists());
}

#[test]
fn signatures_split_between_buffers_are_counted() {
    let stream = b"xxPK\x01\x02yyPK\x01\x02PK\x01\x02z".to_vec();
    for split in 0..stream.len() {
        for second in split..stream.len() {
            let mut counter = SignatureCounter::default();
            counter.feed(&stream[..split]);
            counter.feed(&stream[split..second]);
            counter.feed(&stream[second..]);
            assert_eq!(counter.count, 3, "split at {split} and {second}");
        }
    }
}

#[test]
fn a_name_zipped_twice_counts_once_per_copy_as_its_last_copy() {
    let twice = [File("a", b"1"), File("a", b"1")];
    let zip = zip_of_duplicates(&twice);
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(
        unpack(zip.path(), dest.path(), &limits()).unwrap(),
        id_of(&twice)
    );
    // Copies that differ: what is unpacked is the last, and the id says
    // so; the id of the first copy would not match it.
    let differing = [File("a", b"1"), File("a", b"2")];
    let zip = zip_of_duplicates(&differing);
    let dest = tempfile::tempdir().unwrap();
    let id = unpack(zip.path(), dest.path(), &limits()).unwrap();
    assert_eq!(std::fs::read(dest.path().join("a")).unwrap(), b"2");
    assert_eq!(id, id_of(&[File("a", b"2"), File("a", b"2")]));
    assert_ne!(id, id_of(&differing));
}

#[test]
fn two_names_for_one_path_must_agree() {
    let (err, _dest) = unpack_err(&[File("a", b"1"), File("./a", b"2")], &limits());
    assert_invalid(&err, "another member has already written");
    let zip = zip_of(&[File("a", b"1"), File("./a", b"1")]);
    let dest = tempfile::tempdir().unwrap();
    unpack(zip.path(), dest.path(), &limits()).unwrap();
}

/// A zip of stored files written by hand, names repeated as given: Python's
/// zipfile writes duplicates (the client may zip a path twice), the zip
/// crate refuses to.
fn zip_of_duplicates(members: &[Member]) -> tempfile::NamedTempFile {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for member in members {
        let File(name, content) = member else {
            unreachable!("files only")
        };
        let offset = out.len() as u32;
        let (crc, size, name_len) = (crc32(content), content.len() as u32, name.len() as u16);
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for field in [crc, size, size] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(content);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for field in [crc, size, size] {
            central.extend_from_slice(&field.to_le_bytes());
        }
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 8]);
        central.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (start, count) = (out.len() as u32, members.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&[0; 2]);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), out).unwrap();
    file
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_hash_mismatch_is_refused_and_leaves_nothing() {
    let members = [File("home/u/a.py", b"print(1)")];
    let (uploads, root) = uploads(limits());
    let alice = user("alice");
    let claimed = blob(&"a".repeat(64));
    std::fs::write(uploads.chunk_path(&alice, &claimed, 0).unwrap(), b"half").unwrap();
    let bytes = zip_bytes(&members);
    let (first, second) = bytes.split_at(bytes.len() / 2);
    std::fs::write(uploads.chunk_path(&alice, &claimed, 0).unwrap(), first).unwrap();
    assert_eq!(
        uploads.complete(&alice, &claimed, 2).unwrap(),
        Progress::Uploading { missing: vec![1] }
    );
    std::fs::write(uploads.chunk_path(&alice, &claimed, 1).unwrap(), second).unwrap();
    let err = uploads.complete(&alice, &claimed, 2).unwrap_err();
    assert!(
        matches!(&err, UploadError::HashMismatch { actual, .. } if *actual == id_of(&members)),
        "{err}"
    );
    assert!(!uploads.exists(&alice, &claimed));
    assert_eq!(tree(&root.path().join("users/alice")), Vec::<String>::new());
    // The right id is accepted.
    let right = blob(&id_of(&members));
    assert_eq!(
        send(&uploads, &alice, &right, &bytes).unwrap(),
        Progress::Completed
    );
    assert_eq!(
        std::fs::read_to_string(uploads.files(&alice, &right).join("home/u/a.py")).unwrap(),
        "print(1)"
    );
    assert_eq!(
        tree(&root.path().join("users/alice").join(right.as_str()))
            .iter()
            .filter(|p| !p.starts_with("files"))
            .count(),
        0,
        "chunks and the zip are removed once unpacked"
    );
}

#[test]
fn a_crafted_zip_is_a_refusal_that_leaves_nothing() {
    let (uploads, root) = uploads(limits());
    let alice = user("alice");
    for bytes in [
        b"not a zip at all".to_vec(),
        // A file, then a member under it as if it were a directory.
        zip_bytes(&[File("a", b"x"), File("a/b", b"y")]),
        // A name the filesystem cannot hold.
        zip_bytes(&[File(&"n".repeat(300), b"x")]),
        // Truncated: the central directory is gone.
        {
            let whole = zip_bytes(&[File("a", &[b'x'; 10_000])]);
            whole[..whole.len() / 2].to_vec()
        },
    ] {
        let id = blob(&"c".repeat(64));
        let err = send(&uploads, &alice, &id, &bytes).unwrap_err();
        assert!(matches!(err, UploadError::Invalid(_)), "{err:?}");
        assert_eq!(tree(&root.path().join("users/alice")), Vec::<String>::new());
    }
}

#[test]
fn blobs_belong_to_their_uploader() {
    let members = [File("x", b"1")];
    let (uploads, _root) = uploads(limits());
    let (alice, bob) = (user("alice"), user("bob"));
    let id = blob(&id_of(&members));
    send(&uploads, &alice, &id, &zip_bytes(&members)).unwrap();
    assert!(uploads.exists(&alice, &id));
    assert!(!uploads.exists(&bob, &id));
    assert_ne!(uploads.files(&alice, &id), uploads.files(&bob, &id));
}

#[test]
fn the_sweep_removes_only_what_was_left_untouched_too_long() {
    let (uploads, root) = uploads(limits());
    let alice = user("alice");
    let members = [File("x", b"1")];
    let done = blob(&id_of(&members));
    send(&uploads, &alice, &done, &zip_bytes(&members)).unwrap();
    let pending = blob(&"d".repeat(64));
    std::fs::write(uploads.chunk_path(&alice, &pending, 3).unwrap(), b"part").unwrap();
    // What a crash between unpacking and cleaning up leaves.
    std::fs::create_dir_all(
        root.path()
            .join("users/alice")
            .join(done.as_str())
            .join("chunks"),
    )
    .unwrap();
    // A blob of the layout before blobs were per user.
    std::fs::create_dir_all(root.path().join("e".repeat(64)).join("files")).unwrap();

    let now = SystemTime::now();
    assert_eq!(uploads.sweep(now), 0, "nothing is stale yet");
    assert!(uploads.chunk_path(&alice, &pending, 3).unwrap().exists());

    let later = now + DEFAULT_STALE_AFTER + Duration::from_secs(1);
    assert_eq!(uploads.sweep(later), 3);
    assert_eq!(
        tree(root.path()),
        vec![
            "users".to_owned(),
            "users/alice".to_owned(),
            format!("users/alice/{done}"),
            format!("users/alice/{done}/files"),
            format!("users/alice/{done}/files/x"),
        ]
    );
    assert!(uploads.exists(&alice, &done), "complete blobs stay");
}

#[test]
fn a_zip_from_the_official_client_unpacks_to_the_id_it_computed() {
    // Made by skypilot 0.14.1's `storage_utils.zip_files_and_folders` from
    // [proj, proj/src/main.py] (so main.py is in it twice), where proj holds
    // a non-ASCII name, an empty directory, a link to a file, a link to a
    // directory (stored as `/…/srclink/`), and a dangling link; the id is
    // what its `_compute_zip_blob_id` printed.
    let zip = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(zip.path(), include_bytes!("testdata/official-client.zip")).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let id = unpack(zip.path(), dest.path(), &limits()).unwrap();
    assert_eq!(
        id,
        "fc805ab61f80b4c64627c3f926f08b1ed569cdc6bc463d743367fbd262424f7e"
    );
    let proj = dest.path().join("tmp/sky-fixture/proj");
    assert_eq!(
        std::fs::read_to_string(proj.join("link.py")).unwrap(),
        "print(1)\n"
    );
    assert_eq!(
        std::fs::read_link(proj.join("srclink")).unwrap(),
        Path::new("src")
    );
    assert!(proj.join("empty").is_dir());
    assert_eq!(
        std::fs::read(proj.join("café.txt")).unwrap(),
        "café".as_bytes()
    );
}

#[test]
fn chunks_completing_at_once_unpack_the_upload_once() {
    let members = [File("x", b"1")];
    let (uploads, _root) = uploads(limits());
    let (alice, id) = (user("alice"), blob(&id_of(&members)));
    let bytes = zip_bytes(&members);
    let (first, second) = bytes.split_at(bytes.len() / 2);
    std::fs::write(uploads.chunk_path(&alice, &id, 0).unwrap(), first).unwrap();
    std::fs::write(uploads.chunk_path(&alice, &id, 1).unwrap(), second).unwrap();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| uploads.complete(&alice, &id, 2)))
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap().unwrap(), Progress::Completed);
        }
    });
    assert!(uploads.exists(&alice, &id));
    assert!(
        uploads.finishing.lock().unwrap().is_empty(),
        "no lock is kept"
    );
}

#[test]
fn links_that_cost_too_much_to_check_are_refused() {
    // A chain of 40 links, each spelt with 100 `x/../`, and 1,500 links to
    // its start: each costs about 8,000 steps to resolve, 12 million in all.
    let padding = "x/../".repeat(100);
    let mut targets: Vec<(String, String)> = (0..39)
        .map(|i| (format!("c{i}"), format!("{padding}c{}", i + 1)))
        .collect();
    targets.push(("c39".to_owned(), ".".to_owned()));
    targets.extend((0..1500).map(|k| (format!("l{k}"), "c0".to_owned())));
    let members: Vec<Member> = targets.iter().map(|(n, t)| Link(n, t)).collect();
    let started = std::time::Instant::now();
    let (err, _dest) = unpack_err(&members, &limits());
    assert_invalid(&err, "take more than");
    eprintln!("refused in {:?}", started.elapsed());
}
