//! `sky show-gpus`: the accelerators of this machine, the one place the
//! `local` infrastructure runs clusters. No cloud catalog: a GPU is listed
//! when this machine has it (by `nvidia-smi`, or `SKYDECK_LOCAL_ACCELERATORS`).

use super::{OpResult, RequestContext};
use skydeck_infra::Machine;
use skydeck_types::listing_bodies::{CloudFilter, ListAcceleratorCountsBody, ListAcceleratorsBody};
use std::collections::BTreeMap;

/// The cloud column of the client's tables.
const CLOUD: &str = "Local";

/// `{name: [quantities a cluster can ask for]}`.
pub async fn list_accelerator_counts(
    _ctx: &RequestContext,
    body: ListAcceleratorCountsBody,
) -> OpResult {
    let (_, offers) = offers(
        body.clouds.as_ref(),
        body.name_filter.as_deref(),
        false,
        body.quantity_filter,
    )
    .await?;
    Ok(serde_json::json!(offers))
}

/// `{name: [InstanceTypeInfo fields, one row per quantity]}`: free on your
/// own hardware, and never spot.
pub async fn list_accelerators(_ctx: &RequestContext, body: ListAcceleratorsBody) -> OpResult {
    let (machine, offers) = offers(
        body.clouds.as_ref(),
        body.name_filter.as_deref(),
        body.case_sensitive,
        body.quantity_filter,
    )
    .await?;
    let rows: BTreeMap<String, Vec<serde_json::Value>> = offers
        .into_iter()
        .map(|(name, quantities)| {
            let rows = quantities
                .into_iter()
                .map(|count| {
                    // cloud, instance_type, accelerator_name,
                    // accelerator_count, cpu_count, device_memory, memory,
                    // price, spot_price, region: the "instance" is this
                    // whole machine.
                    serde_json::json!([
                        CLOUD,
                        "local",
                        name,
                        count,
                        machine.as_ref().map(|m| m.cpus),
                        null,
                        machine.as_ref().map(|m| m.memory_gb.round()),
                        0.0,
                        null,
                        "local"
                    ])
                })
                .collect();
            (name, rows)
        })
        .collect();
    Ok(serde_json::json!(rows))
}

type Offers = BTreeMap<String, Vec<u32>>;

/// This machine (unless the filter rules it out) and its accelerators that
/// pass the filters, each with the quantities a cluster can ask for (1 up
/// to how many there are).
async fn offers(
    clouds: Option<&CloudFilter>,
    name_filter: Option<&str>,
    case_sensitive: bool,
    quantity: Option<u32>,
) -> Result<(Option<Machine>, Offers), skydeck_types::RequestError> {
    // One named cloud is the user's `--infra`, which the client only
    // accepts for clouds of its own registry, never `local`; the default is
    // the list of every catalog cloud, which stands for "anywhere".
    if matches!(clouds, Some(CloudFilter::One(_))) {
        return Ok((None, BTreeMap::new()));
    }
    let machine = tokio::task::spawn_blocking(Machine::probe)
        .await
        .map_err(super::internal)?;
    let offers = filter(&machine.accelerators, name_filter, case_sensitive, quantity);
    Ok((Some(machine), offers))
}

fn filter(
    accelerators: &BTreeMap<String, f64>,
    name_filter: Option<&str>,
    case_sensitive: bool,
    quantity: Option<u32>,
) -> Offers {
    let matches = |name: &str| match name_filter {
        None => true,
        Some(filter) if case_sensitive => name.contains(filter),
        Some(filter) => name
            .to_ascii_lowercase()
            .contains(&filter.to_ascii_lowercase()),
    };
    accelerators
        .iter()
        .filter(|(name, _)| matches(name))
        .filter_map(|(name, &count)| {
            // Fractions of a GPU are not offered: a cluster asks for whole
            // ones here.
            let whole = count.floor().clamp(0.0, f64::from(u32::MAX)) as u32;
            let quantities: Vec<u32> = (1..=whole)
                .filter(|q| quantity.is_none_or(|wanted| *q == wanted))
                .collect();
            (!quantities.is_empty()).then(|| (name.clone(), quantities))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> BTreeMap<String, f64> {
        BTreeMap::from([("H100".to_owned(), 2.0), ("L4".to_owned(), 1.0)])
    }

    #[test]
    fn every_gpu_is_offered_in_each_quantity_up_to_what_the_machine_has() {
        let offers = filter(&machine(), None, true, None);
        assert_eq!(offers["H100"], vec![1, 2]);
        assert_eq!(offers["L4"], vec![1]);
    }

    #[test]
    fn filters_by_name_and_quantity() {
        let offers = filter(&machine(), Some("h100"), false, None);
        assert_eq!(offers.keys().collect::<Vec<_>>(), vec!["H100"]);
        assert!(filter(&machine(), Some("h100"), true, None).is_empty());
        let offers = filter(&machine(), None, true, Some(2));
        assert_eq!(offers, BTreeMap::from([("H100".to_owned(), vec![2])]));
        assert!(filter(&machine(), None, true, Some(3)).is_empty());
    }
}
