mod client_flow;
