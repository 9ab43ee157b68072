//! A cluster's `resources.ports` on a pool host: placement keeps clusters
//! off each other's ports; this keeps a new cluster off ports that some
//! other program on its head host already listens on, as `local` does, so
//! that `endpoints` never names a port the job cannot have.

use crate::InfraError;

/// The ports of `wanted` that the head host reported in use (one per line
/// of `answer`, the output of `scripts::ports_in_use`).
pub fn taken(answer: &str, wanted: &[u16]) -> Vec<u16> {
    answer
        .lines()
        .filter_map(|line| line.trim().parse::<u16>().ok())
        .filter(|port| wanted.contains(port))
        .collect()
}

/// The refusal for ports in use on `host` (the pool file's name for it).
pub fn refusal(pool: &str, host: &str, taken: &[u16]) -> InfraError {
    let list: Vec<String> = taken.iter().map(u16::to_string).collect();
    InfraError::Unsatisfiable(format!(
        "Port {} on host {host} of SSH node pool {pool} is in use by a program outside Skydeck; the task's \
         resources.ports cannot be exposed. Stop that program, or choose other ports.",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ports_asked_for_count_as_taken() {
        assert_eq!(taken("8080\n\n9000\nnoise\n", &[8080, 8081]), [8080]);
        assert!(taken("", &[8080]).is_empty());
    }

    #[test]
    fn the_refusal_names_the_ports_and_the_host() {
        let err = refusal("rack", "h1", &[80, 443]).to_string();
        assert!(
            err.contains("Port 80, 443 on host h1 of SSH node pool rack is in use"),
            "{err}"
        );
    }
}
