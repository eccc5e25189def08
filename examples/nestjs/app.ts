/**
 * NestJS: a service method made resilient with the `@resilient(...)` decorator.
 *
 * NestJS uses legacy decorators (`experimentalDecorators`), and `@resilient` works as one. The policy is
 * built once per method, so its breaker is shared by every instance of the class (a Nest provider is a
 * singleton anyway). Dependencies are injected with explicit `@Inject(token)`: it works without
 * `emitDecoratorMetadata`, which esbuild, Vite and other fast TypeScript transforms do not provide.
 *
 * `GET /products/:id/stock` calls `InventoryService.getStock(id)`: 3 attempts of 300 ms each with
 * exponential backoff; 5 failures in a row open the circuit for 10 s; whatever fails, the fallback
 * answers with `available: null` and why.
 */
import 'reflect-metadata';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  Param,
  type DynamicModule,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { backoff, isResilienceError, resilient } from 'bulwark';

export interface StartOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** The default is 127.0.0.1. */
  host?: string;
  /** Base URL of the inventory service. */
  inventoryUrl: string;
}

export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

export interface Stock {
  id: string;
  available: number | null;
  degraded?: string;
}

export const INVENTORY_URL = Symbol('INVENTORY_URL');

@Injectable()
export class InventoryService {
  constructor(@Inject(INVENTORY_URL) private readonly inventoryUrl: string) {}

  // A decorator cannot change the method's type: its declared return type includes the fallback's.
  @resilient({
    retry: { maxAttempts: 3, backoff: backoff.exponential({ initial: 50, max: 400 }) },
    timeout: 300,
    circuitBreaker: { consecutiveFailures: 5, halfOpenAfter: 10_000 },
    fallback: (error, id): Stock => ({
      id: String(id),
      available: null,
      degraded: isResilienceError(error) ? error.code : String(error),
    }),
  })
  async getStock(id: string): Promise<Stock> {
    const response = await fetch(`${this.inventoryUrl}/stock/${encodeURIComponent(id)}`, {
      // A decorated method does not get the attempt's AbortSignal: bound the request itself.
      signal: AbortSignal.timeout(1_000),
    });
    if (!response.ok) throw new Error(`inventory answered ${response.status}`);
    const body = (await response.json()) as { available: number };
    return { id, available: body.available };
  }
}

@Controller('products')
export class StockController {
  constructor(@Inject(InventoryService) private readonly inventory: InventoryService) {}

  @Get(':id/stock')
  getStock(@Param('id') id: string): Promise<Stock> {
    return this.inventory.getStock(id);
  }
}

@Module({})
export class AppModule {
  static forRoot(inventoryUrl: string): DynamicModule {
    return {
      module: AppModule,
      controllers: [StockController],
      providers: [InventoryService, { provide: INVENTORY_URL, useValue: inventoryUrl }],
    };
  }
}

export async function start(options: StartOptions): Promise<RunningApp> {
  const app = await NestFactory.create<NestExpressApplication>(
    AppModule.forRoot(options.inventoryUrl),
    { logger: false },
  );
  const host = options.host ?? '127.0.0.1';
  await app.listen(options.port, host);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  return { url: `http://${host}:${port}`, close: () => app.close() };
}
