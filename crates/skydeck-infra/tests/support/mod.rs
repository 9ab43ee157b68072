pub mod ssh_hosts;
