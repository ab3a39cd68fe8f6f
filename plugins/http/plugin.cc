// The one export of the `http` source plugin.

#include "http_config.h"
#include "http_source.h"
#include "junction/sdk/plugin.h"

JUNCTION_SOURCE_PLUGIN(junction::plugins::http::HttpSource,
                       junction::plugins::http::HttpSourceConfig,
                       junction::plugins::http::httpSourceOptions(),
                       {.name = "http", .version = "1.0.0",
                        .summary = "Segment/RudderStack HTTP Tracking API: track, identify, page, "
                                   "screen, group, alias, batch"})
