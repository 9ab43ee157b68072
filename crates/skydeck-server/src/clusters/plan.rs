pub struct Plan;
