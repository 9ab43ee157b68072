//! End-to-end tests on whole task YAMLs: SkyPilot's own examples, what the
//! official client sends, and the mistakes people make.

use super::*;

fn one(yaml: &str) -> TaskSpec {
    let mut tasks = parse_tasks(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(tasks.len(), 1);
    tasks.remove(0)
}

fn err(yaml: &str) -> TaskError {
    match parse_tasks(yaml) {
        Ok(tasks) => panic!("accepted: {tasks:?}"),
        Err(error) => error,
    }
}

/// Parse → YAML → parse gives the same task; and the same through JSON,
/// which is how the server stores it.
fn assert_round_trips(task: &TaskSpec) {
    let yaml = task.to_yaml();
    let again = one(&yaml);
    assert_eq!(&again, task, "YAML round trip changed the task:\n{yaml}");
    let json = serde_json::to_string(task).unwrap();
    let from_json: TaskSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(
        &from_json, task,
        "JSON round trip changed the task:\n{json}"
    );
}

const HELLO: &str = r#"resources:
  cpus: 1+

setup: |
  echo "Running setup."

run: |
  echo "Hello, SkyPilot!"
"#;

const MULTI_NODE: &str = r#"name: distributed-training
num_nodes: 2
resources:
  infra: aws/us-east-1
  accelerators: A100:8
envs:
  EPOCHS: 3
  LR: 0.001
setup: pip install torch
run: |
  MASTER_ADDR=$(echo "$SKYPILOT_NODE_IPS" | head -n1)
  torchrun --nnodes=$SKYPILOT_NUM_NODES --node_rank=$SKYPILOT_NODE_RANK \
    --master_addr=$MASTER_ADDR train.py --epochs $EPOCHS
"#;

const GPU: &str = r#"name: llm
resources:
  accelerators: H100:8
  memory: 512+
  disk_size: 1TB
  disk_tier: best
  ports: 8000
  image_id: docker:vllm/vllm-openai:latest
  use_spot: false
  autostop: 30m
file_mounts:
  /checkpoints:
    name: my-ckpts
    store: s3
    mode: MOUNT_CACHED
  ~/dataset: s3://public-data/wiki
envs:
  MODEL_NAME: meta-llama/Llama-3-70B
secrets:
  HF_TOKEN: null
run: vllm serve $MODEL_NAME --tensor-parallel-size $SKYPILOT_NUM_GPUS_PER_NODE
"#;

const ANY_OF: &str = r#"resources:
  accelerators: {A100: 8, H100: 8}
  any_of:
    - infra: aws
    - infra: gcp/us-central1
    - infra: k8s
      use_spot: true
run: nvidia-smi
"#;

/// What `sky launch` (0.14.1) sends after uploading the workdir and file
/// mounts: a header naming the chain, then the task.
const FROM_OFFICIAL_CLIENT: &str = r#"name: hello
---
name: hello
resources: {infra: kubernetes, cpus: 2+}
num_nodes: 1
setup: echo setup
workdir: /home/u/proj
run: echo hello
file_mounts: {/remote/data.txt: /home/u/proj/task.yaml}
file_mounts_mapping: {/home/u/proj: /home/u/proj, /home/u/proj/task.yaml: /home/u/proj/task.yaml}
volumes: {}
_user_specified_yaml: "..."
"#;

/// `dag_utils.dump_chain_dag_to_yaml_str` output, produced with the real
/// SkyPilot 0.14.1 from a task with any_of, envs, secrets and a bucket.
const DUMPED_BY_SKYPILOT: &str = r#"name: hello
---

name: hello

resources:
  any_of:
  - infra: kubernetes
    cpus: 2+
    accelerators:
      A100: 8
    use_spot: true
    _requires_fuse: true
  - infra: kubernetes
    cpus: 2+
    accelerators:
      H100: 8
    _requires_fuse: true

num_nodes: 2

setup: echo setup

workdir: .

run: 'echo hello

  echo $MODEL

  '

envs:
  MODEL: llama
  DEBUG: 'True'

secrets:
  HF_TOKEN: hf_123

file_mounts:
  /remote/data.txt: ./task.yaml
  /bucket:
    source: s3://my-bucket
    persistent: true
    mode: MOUNT

volumes: {}

_user_specified_yaml: "name: hello\n\nresources:\n  infra: kubernetes\n  cpus: 2+\n\
  \  any_of:\n  - accelerators: H100:8\n  - accelerators:\n      A100: 8\n    use_spot:\
  \ true\n\nnum_nodes: 2\n\nenvs:\n  MODEL: llama\n  DEBUG: true\n\nsecrets:\n  HF_TOKEN:\
  \ hf_123\n\nworkdir: .\n\nsetup: echo setup\n\nrun: 'echo hello\n\n  echo $MODEL\n\
  \n  '\n\nfile_mounts:\n  /remote/data.txt: ./task.yaml\n  /bucket:\n    name: my-bucket\n\
  \    source: s3://my-bucket\n    mode: MOUNT\n"
"#;

#[test]
fn hello_world() {
    let task = one(HELLO);
    assert_eq!(task.num_nodes, 1);
    assert_eq!(
        task.resources.cpus_per_node(),
        Some(CpuRequest {
            count: 1.0,
            at_least: true
        })
    );
    assert_eq!(task.setup.as_deref(), Some("echo \"Running setup.\"\n"));
    assert_eq!(task.run.as_deref(), Some("echo \"Hello, SkyPilot!\"\n"));
    assert_eq!(task.resource_choices().len(), 1);
    task.validate().unwrap();
    assert_round_trips(&task);
}

#[test]
fn multi_node_training() {
    let task = one(MULTI_NODE);
    assert_eq!(task.name.as_deref(), Some("distributed-training"));
    assert_eq!(task.num_nodes, 2);
    let accelerator = task.resources.accelerator().unwrap();
    assert_eq!(
        (accelerator.name.as_str(), accelerator.per_node()),
        ("A100", 8.0)
    );
    assert_eq!(accelerator.total(task.num_nodes), 16.0);
    assert_eq!(task.resources.infra_kind().as_deref(), Some("aws"));
    assert_eq!(
        task.resources.infra_spec().unwrap().region.as_deref(),
        Some("us-east-1")
    );
    // Numbers in envs become strings, as in SkyPilot.
    assert_eq!(task.envs["EPOCHS"], EnvValue::Set("3".into()));
    assert_eq!(task.envs["LR"], EnvValue::Set("0.001".into()));
    assert!(
        task.run
            .as_deref()
            .unwrap()
            .contains("--node_rank=$SKYPILOT_NODE_RANK")
    );
    task.validate().unwrap();
    assert_round_trips(&task);
}

#[test]
fn gpu_serving_task() {
    let mut task = one(GPU);
    let r = &task.resources;
    assert_eq!(r.accelerator().unwrap().to_string(), "H100:8");
    assert_eq!(
        r.memory,
        Some(MemoryRequest {
            gb: 512.0,
            at_least: true
        })
    );
    assert_eq!(r.disk_size, Some(1024));
    assert_eq!(r.ports(), vec![8000]);
    assert_eq!(r.autostop.as_ref().unwrap().idle_minutes, Some(30));
    assert_eq!(
        r.image_id,
        Some(ImageId::Image("docker:vllm/vllm-openai:latest".into()))
    );
    let FileMount::Storage(ckpt) = &task.file_mounts["/checkpoints"] else {
        panic!("expected a storage mount");
    };
    assert_eq!(
        (ckpt.store.as_deref(), ckpt.mode.as_deref()),
        (Some("s3"), Some("MOUNT_CACHED"))
    );
    assert_eq!(
        task.file_mounts["~/dataset"],
        FileMount::Source("s3://public-data/wiki".into())
    );
    assert_round_trips(&task);
    // HF_TOKEN has no value yet: launching needs --secret.
    let error = task.validate().unwrap_err();
    assert_eq!(error.kind(), TaskErrorKind::MissingValue);
    assert!(
        error.to_string().contains("--secret HF_TOKEN=VALUE"),
        "{error}"
    );
    let overrides = Overrides {
        secrets: vec![Overrides::parse_secret_arg("HF_TOKEN=hf_live").unwrap()],
        ..Overrides::default()
    };
    task.apply_overrides(&overrides).unwrap();
    task.validate().unwrap();
    assert_eq!(task.secret_values(), vec!["hf_live"]);
}

#[test]
fn any_of_expands_into_choices() {
    let task = one(ANY_OF);
    let choices = task.resource_choices();
    // Three locations, each with either accelerator.
    assert_eq!(choices.len(), 6);
    let kinds: Vec<_> = choices.iter().map(|c| c.infra_kind().unwrap()).collect();
    assert_eq!(
        kinds,
        ["aws", "aws", "gcp", "gcp", "kubernetes", "kubernetes"]
    );
    assert!(
        choices
            .iter()
            .all(|c| c.accelerator().unwrap().count == 8.0)
    );
    assert_eq!(
        choices.iter().filter(|c| c.use_spot == Some(true)).count(),
        2
    );
    task.validate().unwrap();
    assert_round_trips(&task);
}

#[test]
fn ordered_preferences() {
    let task =
        one("resources:\n  ordered:\n    - infra: k8s\n    - infra: aws\n      cpus: 8\nrun: x\n");
    let choices = task.resource_choices();
    assert!(task.resources.choices_are_ordered());
    assert_eq!(choices[0].infra_kind().as_deref(), Some("kubernetes"));
    assert_eq!(choices[1].cpus.unwrap().count, 8.0);
    assert_round_trips(&task);
}

#[test]
fn dag_from_the_official_client() {
    let dag = parse_dag(FROM_OFFICIAL_CLIENT).unwrap();
    assert_eq!(dag.name.as_deref(), Some("hello"));
    assert_eq!(dag.tasks.len(), 1);
    let task = &dag.tasks[0];
    assert_eq!(task.resources.infra_kind().as_deref(), Some("kubernetes"));
    assert_eq!(task.resources.cpus.unwrap().to_string(), "2+");
    assert_eq!(task.workdir, Some(Workdir::Path("/home/u/proj".into())));
    assert_eq!(
        task.file_mounts_mapping["/home/u/proj/task.yaml"],
        "/home/u/proj/task.yaml"
    );
    assert_eq!(
        task.passthrough["_user_specified_yaml"],
        serde_json::json!("...")
    );
    assert_eq!(task.passthrough["volumes"], serde_json::json!({}));
    task.validate().unwrap();
    assert_round_trips(task);
    assert_eq!(parse_dag(&dag.to_yaml()).unwrap(), dag);
}

#[test]
fn dag_dumped_by_skypilot() {
    let dag = parse_dag(DUMPED_BY_SKYPILOT).unwrap();
    let task = &dag.tasks[0];
    assert_eq!(task.resources.any_of.len(), 2);
    assert_eq!(
        task.resources.any_of[0].internal["_requires_fuse"],
        serde_json::json!(true)
    );
    assert_eq!(task.envs["DEBUG"], EnvValue::Set("True".into()));
    assert_eq!(task.run.as_deref(), Some("echo hello\necho $MODEL\n"));
    let FileMount::Storage(bucket) = &task.file_mounts["/bucket"] else {
        panic!("expected a storage mount");
    };
    assert_eq!(bucket.persistent, Some(true));
    assert_round_trips(task);
    // The user's original YAML is kept, with its secret hidden on redaction.
    let original = task.passthrough["_user_specified_yaml"].as_str().unwrap();
    assert!(original.contains("hf_123"));
    let redacted = task.redacted();
    let shown = redacted.passthrough["_user_specified_yaml"]
        .as_str()
        .unwrap();
    assert!(!shown.contains("hf_123"), "{shown}");
    assert!(!redacted.to_yaml().contains("hf_123"));
    assert!(!redact_task_yaml(DUMPED_BY_SKYPILOT).contains("hf_123"));
}

#[test]
fn chains_keep_their_order() {
    let yaml =
        "name: pipeline\n---\nname: prep\nrun: echo prep\n---\nname: train\nrun: echo train\n";
    let dag = parse_dag(yaml).unwrap();
    assert_eq!(dag.name.as_deref(), Some("pipeline"));
    let names: Vec<_> = dag
        .tasks
        .iter()
        .map(|t| t.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["prep", "train"]);
    // Without a header every document is a task.
    assert_eq!(parse_tasks("run: a\n---\nrun: b\n").unwrap().len(), 2);
    // `execution: serial` may be in the header; nothing else.
    assert_eq!(
        parse_tasks("name: p\nexecution: serial\n---\nrun: a\n")
            .unwrap()
            .len(),
        1
    );
    let error = err("name: p\nexecution: parallel\n---\nrun: a\n");
    assert_eq!((error.document(), error.line()), (Some(1), Some(2)));
}

#[test]
fn a_header_alone_is_one_named_task() {
    let dag = parse_dag("name: only\n").unwrap();
    assert_eq!(dag.name.as_deref(), Some("only"));
    assert_eq!(
        dag.tasks,
        vec![TaskSpec {
            name: Some(crate::names::JobName::new("only").unwrap()),
            ..TaskSpec::default()
        }]
    );
}

#[test]
fn bare_commands() {
    let task = TaskSpec::from_command("python train.py --epochs 3");
    assert_eq!(task.run.as_deref(), Some("python train.py --epochs 3"));
    assert_eq!(task.num_nodes, 1);
    task.validate().unwrap();
    assert_eq!(
        task.to_yaml(),
        "num_nodes: 1\nrun: python train.py --epochs 3\n"
    );
    assert_round_trips(&task);
}

#[test]
fn typo_at_the_top_level() {
    let error = err("name: demo\nsetup: echo\nrunn: echo hi\n");
    assert_eq!(
        error.to_string(),
        "line 3, column 1: unknown field \"runn\" in the task; did you mean \"run\"?"
    );
    assert_eq!(error.kind(), TaskErrorKind::UnknownField);
    assert_eq!((error.line(), error.column()), (Some(3), Some(1)));
    assert_eq!(error.suggestion(), Some("did you mean \"run\"?"));
}

#[test]
fn typo_in_resources_and_candidates() {
    let error = err("run: x\nresources:\n  infra: k8s\n  acclerators: H100:1\n");
    assert_eq!(
        error.to_string(),
        "line 4, column 3: unknown field \"acclerators\" in resources; did you mean \"accelerators\"?"
    );
    let error = err(
        "resources:\n  any_of:\n    - infra: aws\n    - {infra: gcp, use_sopt: true}\nrun: x\n",
    );
    assert_eq!(
        error.to_string(),
        "line 4, column 20: unknown field \"use_sopt\" in resources.any_of[1]; did you mean \"use_spot\"?"
    );
}

#[test]
fn typo_in_a_file_mount() {
    let error = err("file_mounts:\n  /data:\n    source: s3://b\n    mdoe: MOUNT\nrun: x\n");
    assert_eq!(
        error.to_string(),
        "line 4, column 5: unknown field \"mdoe\" in file_mounts./data; did you mean \"mode\"?"
    );
}

#[test]
fn resource_keys_at_the_top_level() {
    let error = err("cpus: 4\nrun: x\n");
    assert_eq!(
        error.to_string(),
        "line 1, column 1: unknown field \"cpus\" in the task; cpus belongs under resources: (resources.cpus)"
    );
}

#[test]
fn no_suggestion_when_nothing_is_close() {
    let error = err("run: x\nfoobarbaz: 1\n");
    assert_eq!(
        error.to_string(),
        "line 2, column 1: unknown field \"foobarbaz\" in the task"
    );
}

#[test]
fn wrong_values_point_at_the_value() {
    let error = err("name: t\nrun: x\nresources:\n  infra: k8s\n  cpus: two\n");
    assert_eq!(
        error.to_string(),
        "line 5, column 9: resources.cpus: invalid value \"two\": expected a number of CPUs such as 4 or \"4+\""
    );
    let error = err("num_nodes: two\nrun: x\n");
    assert_eq!(
        error.to_string(),
        "line 1, column 12: num_nodes: invalid value \"two\": expected a whole number of nodes, 1 to 1000"
    );
    let error = err("num_nodes: 0\n");
    assert_eq!(error.path().to_string(), "num_nodes");
    let error = err("run:\n  - echo a\n  - echo b\n");
    assert_eq!(
        error.to_string(),
        "line 2, column 3: run: expected a shell script (a string; use | for several lines), found a list"
    );
    let error = err("run: x\nresources:\n  ports: [8080, web]\n");
    assert_eq!((error.line(), error.column()), (Some(3), Some(17)));
    assert_eq!(error.path().to_string(), "resources.ports[1]");
    let error = err("run: x\nenvs:\n  9LIVES: x\n");
    assert_eq!((error.line(), error.column()), (Some(3), Some(3)));
    assert!(
        error.to_string().contains("not a valid variable name"),
        "{error}"
    );
}

#[test]
fn infra_typos_suggest_the_kind() {
    let error = err("run: x\nresources:\n  infra: kuberntes/my-ctx\n");
    assert_eq!(
        error.to_string(),
        "line 3, column 10: resources.infra: invalid value \"kuberntes/my-ctx\": expected an infrastructure \
         such as local, kubernetes[/context], ssh/<pool>, slurm/<cluster> or <cloud>[/<region>[/<zone>]], \
         or \"*\" for any; did you mean \"kubernetes\"?"
    );
}

#[test]
fn errors_in_later_documents_say_which() {
    let error = err("name: chain\n---\nrun: a\n---\nrun: b\nnum_nodse: 2\n");
    assert_eq!(
        error.to_string(),
        "document 3, line 6, column 1: unknown field \"num_nodse\" in the task; did you mean \"num_nodes\"?"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let error = err("name: t\n\trun: echo\n");
    assert_eq!(error.kind(), TaskErrorKind::Syntax);
    assert_eq!((error.line(), error.column()), (Some(2), Some(1)));
    assert_eq!(
        error.suggestion(),
        Some("YAML indentation must use spaces, not tabs")
    );
    let error = err("run: echo\nresources: {cpus: 2\n");
    assert_eq!(error.kind(), TaskErrorKind::Syntax);
    assert!(error.line().is_some());
    assert!(!error.message().contains(" at line "), "{error}");
    let error = err("run: a\nresources:\n  cpus: 2\n  cpus: 4\n");
    assert_eq!(
        error.to_string(),
        "line 4, column 3: duplicate key \"cpus\": a key may appear only once in a mapping"
    );
}

#[test]
fn empty_documents() {
    assert_eq!(err("").kind(), TaskErrorKind::EmptyDocument);
    assert!(
        err("# just a comment\n")
            .to_string()
            .contains("the task YAML is empty")
    );
    let error = err("run: a\n---\n---\nrun: b\n");
    assert_eq!(error.kind(), TaskErrorKind::EmptyDocument);
    assert_eq!(error.document(), Some(2));
}

#[test]
fn null_fields_are_absent() {
    let task = one("name: t\nsetup:\nresources:\nrun: echo\n");
    assert_eq!(task.setup, None);
    assert!(task.resources.is_empty());
}

#[test]
fn secrets_in_list_form_are_required() {
    let mut task = one("secrets: [secrets:HF_TOKEN, secrets:personal.WANDB]\nrun: x\n");
    assert_eq!(task.secrets["HF_TOKEN"], EnvValue::Required);
    assert_eq!(task.secrets["WANDB"], EnvValue::Required);
    assert!(task.validate().is_err());
    task.apply_overrides(&Overrides {
        secrets: vec![
            ("HF_TOKEN".into(), Some("a".into())),
            ("WANDB".into(), Some("b".into())),
        ],
        ..Overrides::default()
    })
    .unwrap();
    task.validate().unwrap();
    assert!(
        err("secrets: [HF_TOKEN]\nrun: x\n")
            .suggestion()
            .unwrap()
            .contains("secrets: {NAME: value}")
    );
}

#[test]
fn git_workdir_and_config() {
    let task = one(
        "workdir: {url: https://github.com/org/repo, ref: main}\nconfig: {kubernetes: {pod_config: {}}}\nrun: x\n",
    );
    assert_eq!(
        task.workdir,
        Some(Workdir::Git {
            url: "https://github.com/org/repo".into(),
            git_ref: Some("main".into())
        })
    );
    assert_eq!(
        task.config,
        Some(serde_json::json!({"kubernetes": {"pod_config": {}}}))
    );
    assert_round_trips(&task);
    assert!(
        err("config: [1]\nrun: x\n")
            .to_string()
            .contains("config: expected a mapping")
    );
}

#[test]
fn yaml_anchors_and_merges() {
    let yaml = "resources:\n  any_of:\n    - &big {infra: aws, cpus: 16}\n    - {<<: *big, infra: gcp}\nrun: x\n";
    let task = one(yaml);
    assert_eq!(task.resources.any_of[1].cpus.unwrap().count, 16.0);
    assert_eq!(task.resources.any_of[1].infra.as_deref(), Some("gcp"));
}

#[test]
fn num_nodes_is_capped_whatever_the_infrastructure() {
    assert_eq!(one("num_nodes: 1000\nrun: x").num_nodes, MAX_NUM_NODES);
    for too_many in ["1001", "1000000", "4294967295", "99999999999999"] {
        let message = err(&format!("num_nodes: {too_many}\nrun: x")).to_string();
        assert!(message.contains("num_nodes"), "{message}");
        assert!(message.contains("1 to 1000"), "{message}");
    }
}

#[test]
fn task_names_follow_the_job_name_rule() {
    assert_eq!(one("name: my job/1\nrun: x").name.unwrap(), "my job/1");
    for bad in ["name: \"a\\nb\"\nrun: x", "name: \"\"\nrun: x"] {
        let message = err(bad).to_string();
        assert!(
            message.contains("a job name is 1 to 128 characters"),
            "{message}"
        );
    }
    let long = "x".repeat(129);
    let message = err(&format!("name: {long}\nrun: x")).to_string();
    assert!(message.contains("job name"), "{message}");
    // The header of a chain too.
    let message = err("name: \"\\u0007\"\n---\nrun: x").to_string();
    assert!(message.contains("job name"), "{message}");
}

#[test]
fn a_name_flag_is_held_to_the_rule_and_changes_nothing_when_refused() {
    let mut task = one("run: x\nnum_nodes: 2");
    let before = task.clone();
    let overrides = Overrides {
        name: Some("bad\u{7}".to_owned()),
        num_nodes: Some(3),
        ..Overrides::default()
    };
    assert!(task.apply_overrides(&overrides).is_err());
    assert_eq!(task, before);
}

const THREE_MISTAKES: &str = r#"name: demo
num_nodes: two
resources:
  cpus: 4
  acelerators: A100
setup: pip install torch
runn: echo hi
"#;

#[test]
fn every_mistake_is_reported_in_file_order() {
    let error = err(THREE_MISTAKES);
    let found: Vec<(Option<usize>, String)> = error
        .all()
        .map(|e| (e.line(), e.path().to_string()))
        .collect();
    // The reader meets `runn` first; the report is in the order of the file.
    assert_eq!(
        found,
        [
            (Some(2), "num_nodes".to_owned()),
            (Some(5), "resources.acelerators".to_owned()),
            (Some(7), "runn".to_owned()),
        ]
    );
    assert_eq!(error.line(), Some(2), "the first mistake leads");
    let message = error.to_string();
    assert!(
        message.starts_with("3 mistakes:\n  line 2, column 12: num_nodes: "),
        "{message}"
    );
    assert!(message.contains("\n  line 5, column 3: unknown field \"acelerators\" in resources; did you mean \"accelerators\"?"), "{message}");
    assert!(
        message.contains(
            "\n  line 7, column 1: unknown field \"runn\" in the task; did you mean \"run\"?"
        ),
        "{message}"
    );
}

#[test]
fn one_mistake_reads_as_before() {
    let message = err("name: demo\nrunn: echo hi\n").to_string();
    assert_eq!(
        message,
        "line 2, column 1: unknown field \"runn\" in the task; did you mean \"run\"?"
    );
}

#[test]
fn mistakes_in_every_document_of_a_chain_are_reported() {
    let yaml = "name: chain\n---\nrunn: a\n---\nrun: b\nnum_nodes: -1\n";
    let error = err(yaml);
    let found: Vec<(Option<usize>, Option<usize>)> =
        error.all().map(|e| (e.document(), e.line())).collect();
    assert_eq!(found, [(Some(2), Some(3)), (Some(3), Some(6))]);
}

#[test]
fn mistakes_inside_a_list_leave_later_positions_right() {
    let yaml = "resources:\n  any_of:\n    - cpus: x\n    - cpus: y\nsetupp: a\nrun: b\n";
    let error = err(yaml);
    let found: Vec<(Option<usize>, String)> = error
        .all()
        .map(|e| (e.line(), e.path().to_string()))
        .collect();
    // The list is set aside whole after its first mistake, so its second
    // one is not reported, but nothing is reported at a wrong place.
    assert_eq!(
        found,
        [
            (Some(3), "resources.any_of[0].cpus".to_owned()),
            (Some(5), "setupp".to_owned()),
        ]
    );
}

#[test]
fn mistakes_are_capped_and_fewer_are_collected_from_a_huge_file() {
    let many = |size: usize| {
        let mut yaml = String::from("run: x\n");
        let mut index = 0;
        while yaml.len() < size {
            yaml.push_str(&format!("unknown_key_{index}: v\n"));
            index += 1;
        }
        yaml
    };
    let error = err(&many(4096));
    assert_eq!(error.all().count(), 50);
    assert_eq!(error.line(), Some(2), "in file order from the first");
    // Each mistake is a reread: near the size limit only a few are.
    let started = std::time::Instant::now();
    let error = err(&many(limits::MAX_TASK_YAML_BYTES - 64));
    eprintln!("a 1 MiB file of mistakes read in {:?}", started.elapsed());
    assert_eq!(error.all().count(), 4);
}
